"""CONTRACT §6: any 13-19 digit run passing Luhn is a PAN: rejected, and masked when stored."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import pan, validation
from models.dead_letter import dead_letter
from models.validation import MAX_MESSAGE_BYTES, Reason, Rejection, decode_event

# Well-known test card numbers (brand test ranges), one per length.
PANS = {
    13: "4222222222222",
    15: "378282246310005",
    16: "4111111111111111",
    19: "4000000000000000006",
}


def luhn_complete(prefix: str) -> str:
    """The prefix plus the check digit that makes it pass Luhn."""
    for digit in "0123456789":
        if pan.luhn_valid((prefix + digit).encode()):
            return prefix + digit
    raise AssertionError("unreachable")


@pytest.mark.parametrize("length", [13, 14, 15, 16, 17, 18, 19])
def test_luhn_valid_run_of_13_to_19_digits_is_a_pan(length: int) -> None:
    number = luhn_complete("4" + "1" * (length - 2))
    assert pan.contains_pan(f'{{"note": "{number}"}}'.encode())


@pytest.mark.parametrize("length", [12, 20, 25])
def test_runs_outside_13_to_19_digits_are_not_pans(length: int) -> None:
    number = luhn_complete("4" + "1" * (length - 2))
    assert not pan.contains_pan(f'{{"note": "{number}"}}'.encode())


def test_run_failing_luhn_is_not_a_pan() -> None:
    assert not pan.contains_pan(b'{"note": "4111111111111112"}')


@pytest.mark.parametrize("length", sorted(PANS))
def test_known_test_cards_are_detected(length: int) -> None:
    assert pan.luhn_valid(PANS[length].encode())
    assert pan.find_pans(PANS[length].encode()) == [(0, length)]


@pytest.mark.parametrize(
    "text",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005", "3782-822463-10005"],
)
def test_printed_groupings_are_detected(text: str) -> None:
    assert pan.contains_pan(text.encode())


def test_masking_keeps_at_most_first_six_and_last_four() -> None:
    raw = b'{"a": "4111111111111111", "b": "4111 1111 1111 1111", "c": "4222222222222"}'
    masked = pan.mask_pans(raw)
    assert masked == (
        b'{"a": "411111******1111", "b": "4111 11** **** 1111", "c": "422222***2222"}'
    )
    assert not pan.contains_pan(masked)


def test_identifiers_of_a_normal_event_are_not_mistaken_for_pans() -> None:
    raw = (
        b'{"event_id":"t-7f3a9c2e-000123-o","terminal_id":"T00012345","stan":"000123",'
        b'"transmitted_at":"2026-11-27T09:15:02Z","amount_minor":12550,'
        b'"rrn":"633109123456","card_token":"tok_9f8e7d6c5b4a39281706"}'
    )
    assert pan.find_pans(raw) == []


def test_rejected_event_with_a_pan_is_stored_masked_in_the_dead_letter() -> None:
    raw = b'{"type": "request", "card_token": "4111111111111111"}'
    rejection = decode_event("terminal", raw, timedelta(seconds=120))
    assert isinstance(rejection, Rejection) and rejection.reason is Reason.PAN_DETECTED
    assert "4111" not in rejection.detail
    record = dead_letter(rejection.reason, rejection.detail, raw, topic="t", partition=0, offset=7)
    stored = record.raw_bytes()
    assert b"4111111111111111" not in stored
    assert b"411111******1111" in stored
    assert not pan.contains_pan(base64.b64decode(record.raw_base64))


def test_pan_cut_by_the_size_limit_is_still_masked() -> None:
    prefix = b'{"pad": "' + b"x" * (MAX_MESSAGE_BYTES - 20) + b'", "n": "'
    raw = prefix + b'4111111111111111"}'
    record = dead_letter(Reason.PAN_DETECTED, "pan", raw)
    assert record.raw_truncated
    assert len(record.raw_bytes()) == MAX_MESSAGE_BYTES
    assert b"41111111" not in record.raw_bytes()


@given(st.binary(max_size=300))
def test_any_bytes_are_decoded_or_rejected_never_raise(raw: bytes) -> None:
    for source in ("terminal", "issuer"):
        decode_event(source, raw, timedelta(seconds=120))


@given(st.text(alphabet='0123456789 -abc:"{}', max_size=60))
def test_masked_bytes_never_contain_a_pan(text: str) -> None:
    assert not pan.contains_pan(pan.mask_pans(text.encode()))


ESCAPED_PAN = "\\u0034111111111111111"  # JSON for "4111111111111111", first digit escaped


@pytest.mark.parametrize("field", ["card_token", "event_id", "currency", "note"])
def test_pan_spelled_with_json_escapes_is_still_a_pan(field: str) -> None:
    raw = b'{"type": "request", "' + field.encode() + b'": "' + ESCAPED_PAN.encode() + b'"}'
    rejection = decode_event("terminal", raw, timedelta(seconds=120))
    assert isinstance(rejection, Rejection) and rejection.reason is Reason.PAN_DETECTED
    stored = dead_letter(rejection.reason, rejection.detail, raw).raw_bytes()
    assert b"411111******1111" in stored
    assert not pan.contains_pan(stored)


def test_rejection_details_mask_any_card_number_they_quote() -> None:
    # Defence in depth: every route to a PAN is caught before decoding, but a detail
    # quoting a decoded value must not be the one place a card number could slip out.
    detail = validation._detail("Invalid enum value '4111111111111111' - at `$.outcome`")
    assert "411111******1111" in detail
    assert not pan.contains_pan(detail.encode())
