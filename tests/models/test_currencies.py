"""Tests for models.currencies: the ISO 4217 List One table and minor-unit formatting."""

from __future__ import annotations

import pytest

from models.currencies import BY_NUMERIC, CURRENCIES, Currency, exponent, format_minor, is_known


@pytest.mark.parametrize(
    ("alpha", "numeric", "minor_units"),
    [
        ("EUR", 978, 2),
        ("USD", 840, 2),
        ("CNY", 156, 2),
        ("INR", 356, 2),
        ("JPY", 392, 0),
        ("KWD", 414, 3),
        ("BHD", 48, 3),
        ("CLF", 990, 4),
        ("UYW", 927, 4),
        ("XAU", 959, None),
        ("XXX", 999, None),
        ("XCG", 532, 2),
        ("ZWG", 924, 2),
        ("SLE", 925, 2),
        ("VED", 926, 2),
        ("XAD", 396, 2),
    ],
)
def test_known_codes(alpha: str, numeric: int, minor_units: int | None) -> None:
    assert is_known(alpha)
    assert CURRENCIES[alpha] == Currency(alpha, numeric, minor_units)
    assert BY_NUMERIC[numeric].alpha == alpha
    assert exponent(alpha) == (0 if minor_units is None else minor_units)


@pytest.mark.parametrize(
    "alpha",
    [
        "HRK",  # Croatia joined the euro, 2023
        "ANG",  # replaced by XCG, 2025-03-31 (amendment 176)
        "BGN",  # Bulgaria joined the euro, 2026-01-01 (amendment 180)
        "CUC",  # withdrawn 2021, moved to List Three by amendment 178
        "SLL",  # redenominated to SLE
        "ZWL",  # replaced by ZWG (amendment 177)
        "VEF",
        "MRO",
        "STD",
    ],
)
def test_withdrawn_codes_are_not_known(alpha: str) -> None:
    assert not is_known(alpha)
    assert alpha not in CURRENCIES
    with pytest.raises(ValueError, match=alpha):
        exponent(alpha)


@pytest.mark.parametrize("alpha", ["eur", "usd", "Eur", "jpY", "", "EURO", " EUR", "EU"])
def test_not_upper_case_alpha3_is_not_known(alpha: str) -> None:
    assert not is_known(alpha)
    with pytest.raises(ValueError):
        format_minor(100, alpha)


def test_numeric_codes_are_unique() -> None:
    numerics = [c.numeric for c in CURRENCIES.values()]
    assert len(numerics) == len(set(numerics))
    assert len(BY_NUMERIC) == len(CURRENCIES)


def test_table_is_consistent() -> None:
    assert len(CURRENCIES) == 178  # List One as published 2026-01-01
    for key, currency in CURRENCIES.items():
        assert key == currency.alpha
        assert len(key) == 3 and key.isascii() and key.isalpha() and key.isupper()
        assert 0 < currency.numeric < 1000
        assert currency.exponent is None or 0 <= currency.exponent <= 4


@pytest.mark.parametrize(
    ("amount", "alpha", "expected"),
    [
        (12550, "EUR", "125.50 EUR"),
        (0, "EUR", "0.00 EUR"),
        (5, "EUR", "0.05 EUR"),
        (100, "EUR", "1.00 EUR"),
        (-5, "EUR", "-0.05 EUR"),
        (-12550, "USD", "-125.50 USD"),
        (1250, "JPY", "1250 JPY"),
        (0, "JPY", "0 JPY"),
        (-1250, "JPY", "-1250 JPY"),
        (1234567, "BHD", "1234.567 BHD"),
        (7, "KWD", "0.007 KWD"),
        (-1000, "KWD", "-1.000 KWD"),
        (12345, "CLF", "1.2345 CLF"),
        (3, "XAU", "3 XAU"),
        # Beyond float precision: must stay exact.
        (123456789012345678901234567890, "EUR", "1234567890123456789012345678.90 EUR"),
    ],
)
def test_format_minor(amount: int, alpha: str, expected: str) -> None:
    assert format_minor(amount, alpha) == expected


def test_format_minor_rejects_unknown_code() -> None:
    with pytest.raises(ValueError, match="HRK"):
        format_minor(100, "HRK")
