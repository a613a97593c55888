"""Regulatory deadlines (models/deadlines.py): the RBI T+5 reading, compensation, config."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

import pytest
from hypothesis import given
from hypothesis import strategies as st

import models.deadlines as deadlines_module
from models.alerts import Kind
from models.config import ConfigError
from models.deadlines import (
    DAY_US,
    NEUTRAL,
    RBI_CARD_PRESENT,
    DeadlineConfig,
    DeadlinePolicy,
    compensation_minor,
    days_overdue,
    deadline_config_from_mapping,
    deadline_us,
    last_day,
    load_deadline_config,
    overdue_sentence,
    zone_of,
)
from models.instants import MICROS, format_micros, to_micros
from models.stream_time import FOREVER

IST_OFFSET_US = (5 * 3600 + 30 * 60) * MICROS


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return to_micros(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


# ---- the deadline: T is the IST calendar date of transmitted_at ---------------------


def test_a_sale_at_2330_utc_is_dated_the_next_day_in_ist() -> None:
    sent = utc(2026, 11, 27, 23, 30)  # 05:00 IST on 28 Nov: T = 2026-11-28
    due = deadline_us(RBI_CARD_PRESENT, sent)
    assert due is not None
    # 00:00 IST of T+6 (4 Dec) = end of T+5 (3 Dec) = 18:30Z on 3 Dec
    assert format_micros(due) == "2026-12-03T18:30:00Z"
    assert last_day(RBI_CARD_PRESENT, due) == date(2026, 12, 3)


@pytest.mark.parametrize(
    ("sent", "deadline"),
    [
        # 23:59:59 IST on 27 Nov: T = 27 Nov, deadline 00:00 IST 3 Dec
        (utc(2026, 11, 27, 18, 29, 59), "2026-12-02T18:30:00Z"),
        # 00:00 IST on 28 Nov: T = 28 Nov
        (utc(2026, 11, 27, 18, 30, 0), "2026-12-03T18:30:00Z"),
        # 09:15 UTC = 14:45 IST on 27 Nov
        (utc(2026, 11, 27, 9, 15, 2), "2026-12-02T18:30:00Z"),
        # across a month and a year end
        (utc(2026, 12, 30, 12, 0), "2027-01-04T18:30:00Z"),
    ],
)
def test_deadline_is_midnight_ist_after_day_t_plus_5(sent: int, deadline: str) -> None:
    due = deadline_us(RBI_CARD_PRESENT, sent)
    assert due is not None
    assert format_micros(due) == deadline


@given(st.integers(min_value=utc(2000, 1, 1), max_value=utc(2100, 1, 1)))
def test_deadline_is_between_five_and_six_days_later_at_ist_midnight(sent: int) -> None:
    due = deadline_us(RBI_CARD_PRESENT, sent)
    assert due is not None
    assert 5 * DAY_US < due - sent <= 6 * DAY_US
    assert (due + IST_OFFSET_US) % DAY_US == 0


def test_a_fixed_offset_policy_gives_the_same_deadlines() -> None:
    fixed = DeadlinePolicy(
        name="rbi_fixed",
        due_days=5,
        timezone="+05:30",
        compensation_per_day_minor=10_000,
        compensation_currency="INR",
        kinds=RBI_CARD_PRESENT.kinds,
    )
    for sent in (utc(2026, 11, 27, 18, 29, 59), utc(2026, 11, 27, 18, 30), utc(2027, 3, 1)):
        assert deadline_us(fixed, sent) == deadline_us(RBI_CARD_PRESENT, sent)


@pytest.fixture
def no_tz_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def missing(name: str) -> None:
        raise ZoneInfoNotFoundError(name)

    zone_of.cache_clear()
    monkeypatch.setattr(deadlines_module, "ZoneInfo", missing)
    yield
    zone_of.cache_clear()


@pytest.mark.usefixtures("no_tz_database")
def test_without_a_tz_database_kolkata_falls_back_to_its_fixed_offset() -> None:
    sent = utc(2026, 11, 27, 23, 30)
    assert format_micros(deadline_us(RBI_CARD_PRESENT, sent) or 0) == "2026-12-03T18:30:00Z"
    with pytest.raises(ConfigError, match="unknown time zone 'Europe/Berlin'"):
        zone_of("Europe/Berlin")


def test_an_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        DeadlinePolicy(name="x", due_days=1, timezone="Mars/Olympus")


def test_a_dst_zone_counts_calendar_days() -> None:
    berlin = DeadlinePolicy(name="berlin", due_days=1, timezone="Europe/Berlin")
    # Saturday 28 March 2026 12:00 CET; clocks go forward on the 29th.
    due = deadline_us(berlin, utc(2026, 3, 28, 11, 0))
    assert due is not None
    assert format_micros(due) == "2026-03-29T22:00:00Z"  # 00:00 CEST on 30 March
    assert days_overdue(berlin, due, due) == 1
    assert days_overdue(berlin, due, utc(2026, 3, 30, 21, 59, 59)) == 1
    assert days_overdue(berlin, due, utc(2026, 3, 30, 22, 0)) == 2


# ---- compensation: ₹100 per started day of delay after the deadline ------------------


def test_no_compensation_before_the_deadline_then_100_rupees_per_started_day() -> None:
    sent = utc(2026, 11, 27, 9, 15, 2)  # T = 27 Nov IST
    due = deadline_us(RBI_CARD_PRESENT, sent)
    assert due is not None
    assert compensation_minor(RBI_CARD_PRESENT, due, sent) == 0
    assert compensation_minor(RBI_CARD_PRESENT, due, due - 1) == 0
    # a return on day T+6 is one day late: ₹100 is owed from the deadline instant
    assert compensation_minor(RBI_CARD_PRESENT, due, due) == 10_000
    assert compensation_minor(RBI_CARD_PRESENT, due, due + DAY_US - 1) == 10_000
    assert compensation_minor(RBI_CARD_PRESENT, due, due + DAY_US) == 20_000
    assert compensation_minor(RBI_CARD_PRESENT, due, due + 2 * DAY_US + 5) == 30_000
    assert days_overdue(RBI_CARD_PRESENT, due, due + 2 * DAY_US + 5) == 3


@given(
    st.integers(min_value=utc(2000, 1, 1), max_value=utc(2100, 1, 1)),
    st.integers(min_value=0, max_value=30 * DAY_US),
    st.integers(min_value=0, max_value=30 * DAY_US),
)
def test_compensation_never_decreases_with_time(sent: int, a: int, b: int) -> None:
    due = deadline_us(RBI_CARD_PRESENT, sent)
    early, late = sent + min(a, b), sent + max(a, b)
    assert compensation_minor(RBI_CARD_PRESENT, due, early) <= compensation_minor(
        RBI_CARD_PRESENT, due, late
    )
    assert compensation_minor(RBI_CARD_PRESENT, due, late) % 10_000 == 0


def test_missing_inputs_give_nothing() -> None:
    assert days_overdue(RBI_CARD_PRESENT, None, utc(2026, 1, 1)) == 0
    assert days_overdue(RBI_CARD_PRESENT, utc(2026, 1, 1), None) == 0
    assert compensation_minor(RBI_CARD_PRESENT, None, None) == 0


def test_neutral_has_no_deadline_and_no_compensation() -> None:
    sent = utc(2026, 11, 27, 9)
    assert deadline_us(NEUTRAL, sent) is None
    assert compensation_minor(NEUTRAL, None, sent + 30 * DAY_US) == 0
    assert not any(NEUTRAL.applies_to(kind) for kind in Kind)


def test_far_future_times_do_not_crash() -> None:
    sent = utc(2026, 11, 27, 9)
    due = deadline_us(RBI_CARD_PRESENT, sent)
    assert compensation_minor(RBI_CARD_PRESENT, due, FOREVER) > 10_000 * 365 * 7000
    assert deadline_us(RBI_CARD_PRESENT, utc(9999, 12, 31, 23, 59, 59)) is not None
    assert deadline_us(RBI_CARD_PRESENT, -(2**62)) is not None


def test_the_rbi_policy_covers_the_cardholder_kinds_only() -> None:
    covered = {kind for kind in Kind if RBI_CARD_PRESENT.applies_to(kind)}
    assert covered == {Kind.UNMATCHED_DEBIT, Kind.REVERSAL_NOT_APPLIED, Kind.DUPLICATE_DEBIT}


def test_overdue_sentence() -> None:
    sent = utc(2026, 11, 27, 9, 15, 2)  # T = 27 Nov, T+5 = 2 Dec
    due = deadline_us(RBI_CARD_PRESENT, sent)
    assert due is not None
    assert overdue_sentence(RBI_CARD_PRESENT, due, due + 2 * DAY_US) == (
        "Past the RBI deadline of 2026-12-02 (T+5); compensation accrued so far: 300.00 INR."
    )
    assert overdue_sentence(None, due, due) == (
        "Past the regulatory deadline of 2026-12-02T18:30:00Z."
    )
    quiet = DeadlinePolicy(name="quiet", due_days=2, kinds=frozenset({Kind.UNMATCHED_DEBIT}))
    quiet_due = deadline_us(quiet, sent)
    assert quiet_due is not None
    assert overdue_sentence(quiet, quiet_due, quiet_due) == "Past the deadline of 2026-11-29 (T+2)."


# ---- which policy: by the alert's currency -----------------------------------------


def test_default_config_maps_inr_to_rbi_and_everything_else_to_neutral() -> None:
    config = DeadlineConfig()
    assert config.policy_for("INR") is RBI_CARD_PRESENT
    assert config.policy_for("EUR") is NEUTRAL
    assert config.policy_for(None) is NEUTRAL
    sent = utc(2026, 11, 27, 9)
    assert config.due(Kind.UNMATCHED_DEBIT, "INR", sent) == (
        RBI_CARD_PRESENT,
        deadline_us(RBI_CARD_PRESENT, sent),
    )
    assert config.due(Kind.TERMINAL_APPROVED_NO_DEBIT, "INR", sent) == (RBI_CARD_PRESENT, None)
    assert config.due(Kind.UNMATCHED_DEBIT, "CNY", sent) == (NEUTRAL, None)


def test_empty_table_gives_the_defaults() -> None:
    assert deadline_config_from_mapping({}) == DeadlineConfig()


def test_table_with_default_by_currency_and_a_policy() -> None:
    config = deadline_config_from_mapping(
        {
            "default": "neutral",
            "by_currency": {"INR": "rbi_card_present", "EUR": "eu_example"},
            "policies": {
                "eu_example": {
                    "due_days": 1,
                    "timezone": "Europe/Brussels",
                    "kinds": ["unmatched_debit"],
                    "compensation_per_day_minor": 500,
                    "compensation_currency": "EUR",
                    "authority": "EXAMPLE",
                }
            },
        }
    )
    eu = config.policy_for("EUR")
    assert eu.name == "eu_example"
    assert eu.kinds == frozenset({Kind.UNMATCHED_DEBIT})
    assert config.policy_for("INR") is RBI_CARD_PRESENT
    assert config.due(Kind.DUPLICATE_DEBIT, "EUR", utc(2026, 1, 1))[1] is None


def test_by_currency_replaces_the_default_mapping() -> None:
    config = deadline_config_from_mapping({"by_currency": {}})
    assert config.policy_for("INR") is NEUTRAL


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"defualt": "neutral"}, r"unknown setting\(s\) in \[deadlines\]: defualt"),
        ({"default": "rbi"}, r"unknown deadline policy 'rbi' in \[deadlines\]\.default"),
        ({"default": 3}, r"\[deadlines\]\.default must be a policy name"),
        (
            {"by_currency": {"INR": "rbi"}},
            r"unknown deadline policy 'rbi' for INR in \[deadlines\]\.by_currency; "
            r"known: neutral, rbi_card_present",
        ),
        ({"by_currency": {"inr": "neutral"}}, r"'inr' is not an ISO 4217 code"),
        ({"by_currency": {"INR": 5}}, r"by_currency must be a table"),
        ({"by_currency": "INR"}, r"by_currency must be a table"),
        ({"policies": []}, r"\[deadlines\]\.policies must be a table"),
        ({"policies": {"p": 5}}, r"\[deadlines\.policies\.p\] must be a table"),
        (
            {"policies": {"neutral": {}}},
            r"'neutral' is a built-in policy and cannot be redefined",
        ),
        (
            {"policies": {"p": {"due_day": 5}}},
            r"unknown setting\(s\) in \[deadlines\.policies\.p\]",
        ),
        ({"policies": {"p": {"due_days": -1}}}, r"due_days must not be negative"),
        ({"policies": {"p": {"due_days": True}}}, r"due_days must be an integer"),
        ({"policies": {"p": {"due_days": 1.5}}}, r"due_days must be an integer"),
        ({"policies": {"p": {"timezone": "Nowhere/Land"}}}, r"unknown time zone 'Nowhere/Land'"),
        ({"policies": {"p": {"timezone": 5}}}, r"timezone must be a string"),
        (
            {"policies": {"p": {"compensation_per_day_minor": 100}}},
            r"compensation_per_day_minor needs compensation_currency",
        ),
        (
            {"policies": {"p": {"compensation_per_day_minor": -1}}},
            r"compensation_per_day_minor must be an integer >= 0",
        ),
        (
            {"policies": {"p": {"compensation_currency": "RUPEES"}}},
            r"compensation_currency 'RUPEES' is not an ISO 4217 code",
        ),
        ({"policies": {"p": {"kinds": ["ghost_debit"]}}}, r"'ghost_debit' is not a transaction"),
        ({"policies": {"p": {"kinds": ["terminal_incident"]}}}, r"not a transaction alert kind"),
        ({"policies": {"p": {"kinds": "unmatched_debit"}}}, r"kinds must be a list"),
        ({"policies": {"1p": {}}}, r"deadline policy name '1p' must be"),
    ],
)
def test_config_errors_say_what_is_wrong(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        deadline_config_from_mapping(table)


def test_load_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "debitwatch.toml"
    path.write_text(
        '[detection]\nmatch_window = "5m"\n\n'
        '[deadlines]\ndefault = "neutral"\nby_currency = { INR = "rbi_card_present" }\n',
        encoding="utf-8",
    )
    assert load_deadline_config(path) == DeadlineConfig()
    path.write_text("[detection]\n", encoding="utf-8")
    assert load_deadline_config(path) == DeadlineConfig()
    path.write_text("deadlines = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[deadlines\] must be a table"):
        load_deadline_config(path)
