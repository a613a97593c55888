"""CONTRACT §5: every kind of bad input is rejected with its own reason code.

Decoding is strict: no coercion of strings to numbers, no floats for amounts, enums
checked, ISO 4217 checked, times must carry an offset.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, timedelta
from typing import Any

import pytest

from models.events import IssuerAuthorization, TerminalRequest, Watermark
from models.instants import to_micros
from models.validation import MAX_MESSAGE_BYTES, Reason, Rejection, decode_event, decode_events
from tests.factories import encode, event

SKEW = timedelta(seconds=120)


def with_(type_: str = "request", /, **changes: Any) -> bytes:
    extra: dict[str, Any] = {"approved": True} if type_ == "authorization" else {}
    body = event(type_, 1.0, **extra)
    for name, value in changes.items():
        if value is _DROP:
            body.pop(name)
        else:
            body[name] = value
    return encode(body)


_DROP: Any = object()


@dataclasses.dataclass
class Bad:
    name: str
    raw: bytes
    reason: Reason
    source: str = "terminal"


REQUIRED = [
    "event_id",
    "type",
    "terminal_id",
    "merchant_id",
    "stan",
    "transmitted_at",
    "occurred_at",
    "amount_minor",
    "currency",
    "card_token",
]

CASES = [
    Bad("not_json", b'{"type": "request"', Reason.INVALID_JSON),
    Bad("not_utf8", b'{"type": "\xff"}', Reason.INVALID_JSON),
    Bad("empty_message", b"", Reason.INVALID_JSON),
    Bad("json_array", b"[1, 2]", Reason.NOT_AN_OBJECT),
    Bad("json_string", b'"request"', Reason.NOT_AN_OBJECT),
    *(
        Bad(f"missing_{f}", with_(**dict.fromkeys([f], _DROP)), Reason.MISSING_FIELD)
        for f in REQUIRED
    ),
    Bad("missing_outcome", with_("outcome"), Reason.MISSING_FIELD),
    Bad("missing_approved", with_("authorization", approved=_DROP), Reason.MISSING_FIELD, "issuer"),
    Bad("amount_as_string", with_(amount_minor="100"), Reason.WRONG_TYPE),
    Bad("amount_as_float", with_(amount_minor=100.0), Reason.WRONG_TYPE),
    Bad("amount_as_bool", with_(amount_minor=True), Reason.WRONG_TYPE),
    Bad("amount_null", with_(amount_minor=None), Reason.WRONG_TYPE),
    Bad("stan_as_number", with_(stan=123456), Reason.WRONG_TYPE),
    Bad("approved_as_string", with_("authorization", approved="true"), Reason.WRONG_TYPE, "issuer"),
    Bad("approved_as_int", with_("authorization", approved=1), Reason.WRONG_TYPE, "issuer"),
    Bad("time_as_number", with_(occurred_at=1764234902), Reason.WRONG_TYPE),
    Bad("negative_amount", with_(amount_minor=-1), Reason.NEGATIVE_AMOUNT),
    Bad("absurd_amount", with_(amount_minor=2**64), Reason.INVALID_VALUE),
    Bad("unknown_currency", with_(currency="XYZ"), Reason.UNKNOWN_CURRENCY),
    Bad("lowercase_currency", with_(currency="eur"), Reason.UNKNOWN_CURRENCY),
    Bad("withdrawn_currency", with_(currency="HRK"), Reason.UNKNOWN_CURRENCY),
    Bad("unknown_terminal_type", with_(type="refund"), Reason.UNKNOWN_TYPE),
    Bad("unknown_issuer_type", with_(type="outcome"), Reason.UNKNOWN_TYPE, "issuer"),
    Bad("unknown_outcome", with_("outcome", outcome="maybe"), Reason.INVALID_VALUE),
    Bad("short_stan", with_(stan="12345"), Reason.INVALID_VALUE),
    Bad("stan_with_letters", with_(stan="12345a"), Reason.INVALID_VALUE),
    Bad("long_terminal_id", with_(terminal_id="T" * 17), Reason.INVALID_VALUE),
    Bad("empty_event_id", with_(event_id=""), Reason.INVALID_VALUE),
    Bad("long_event_id", with_(event_id="e" * 129), Reason.INVALID_VALUE),
    Bad("event_id_with_control_character", with_(event_id="e\x1f1"), Reason.INVALID_VALUE),
    Bad("long_merchant_id", with_(merchant_id="M" * 21), Reason.INVALID_VALUE),
    Bad("long_card_token", with_(card_token="t" * 65), Reason.INVALID_VALUE),
    Bad("three_char_response_code", with_(response_code="000"), Reason.INVALID_VALUE),
    Bad("time_without_offset", with_(occurred_at="2026-11-27T09:15:02"), Reason.INVALID_TIME),
    Bad("time_not_a_date", with_(occurred_at="yesterday"), Reason.INVALID_TIME),
    Bad("time_impossible_date", with_(occurred_at="2026-02-30T09:15:02Z"), Reason.INVALID_TIME),
    Bad(
        "transmitted_too_far_after_occurred",
        with_(transmitted_at="2026-11-27T09:03:02Z", occurred_at="2026-11-27T09:01:01Z"),
        Reason.CLOCK_SKEW,
    ),
    Bad(
        "too_large",
        with_(padding="x" * MAX_MESSAGE_BYTES),
        Reason.TOO_LARGE,
    ),
    Bad("watermark_without_time", b'{"type": "watermark", "event_id": "w"}', Reason.MISSING_FIELD),
    Bad("pan_in_a_known_field", with_(card_token="4111111111111111"), Reason.PAN_DETECTED),
    Bad("pan_in_an_extra_field", with_(note="card 4111 1111 1111 1111"), Reason.PAN_DETECTED),
    Bad("pan_in_broken_json", b'{"note": "5500005555555559"', Reason.PAN_DETECTED),
    Bad(
        "pan_in_a_too_large_message",
        with_(note="4111111111111111", padding="x" * MAX_MESSAGE_BYTES),
        Reason.PAN_DETECTED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_rejected_with_its_reason(case: Bad) -> None:
    result = decode_event(case.source, case.raw, SKEW)  # type: ignore[arg-type]
    assert isinstance(result, Rejection), result
    assert result.reason is case.reason, result.detail
    assert result.detail
    assert len(result.detail) <= 200


def test_unknown_extra_fields_are_kept_out_of_the_way() -> None:
    raw = with_(note="hello", nested={"a": [1, 2, {"b": None}]}, rrn="633109123456")
    decoded = decode_event("terminal", raw, SKEW)
    assert isinstance(decoded, TerminalRequest)
    assert decoded.rrn == "633109123456"


def test_message_of_exactly_64_kib_is_accepted() -> None:
    base = with_(padding="")
    raw = with_(padding="x" * (MAX_MESSAGE_BYTES - len(base)))
    assert len(raw) == MAX_MESSAGE_BYTES
    assert isinstance(decode_event("terminal", raw, SKEW), TerminalRequest)


def test_times_with_offsets_are_instants() -> None:
    raw = with_(occurred_at="2026-11-27T17:15:02.250+08:00", transmitted_at="2026-11-27T09:15:02Z")
    decoded = decode_event("terminal", raw, SKEW)
    assert isinstance(decoded, TerminalRequest)
    assert decoded.occurred_at.utcoffset() == timedelta(hours=8)


def test_watermarks_are_valid_on_both_topics() -> None:
    raw = b'{"type": "watermark", "event_id": "w1", "occurred_at": "9999-12-31T23:59:59Z"}'
    assert isinstance(decode_event("terminal", raw, SKEW), Watermark)
    assert isinstance(decode_event("issuer", raw, SKEW), Watermark)


def test_transmitted_at_before_occurred_at_is_normal() -> None:
    raw = with_("authorization", transmitted_at="2026-11-26T09:00:00Z")
    assert isinstance(decode_event("issuer", raw, SKEW), IssuerAuthorization)


def test_deeply_nested_unknown_field_is_invalid_json_not_a_crash() -> None:
    raw = with_(nested=0).replace(b'"nested":0', b'"nested":' + b"[" * 20_000 + b"]" * 20_000)
    result = decode_event("terminal", raw, SKEW)
    assert isinstance(result, Rejection) and result.reason is Reason.INVALID_JSON


@pytest.mark.parametrize(
    ("spelling", "second"),
    [
        ("2026-11-27T09:00:00.9999996Z", "09:00:00"),  # msgspec alone would round up
        ("2026-11-27T09:00:00.999999999Z", "09:00:00"),  # Java Instant, nanoseconds
        ("2026-11-27T17:00:00.9999999+08:00", "09:00:00"),
        ("2026-11-27T09:00:01.0000004Z", "09:00:01"),
    ],
)
def test_transmitted_at_is_truncated_to_the_second_whatever_its_precision(
    spelling: str, second: str
) -> None:
    result = decode_event("terminal", with_(transmitted_at=spelling), SKEW)
    assert isinstance(result, TerminalRequest)
    assert result.transmitted_at.astimezone(UTC).strftime("%H:%M:%S") == second


def test_a_batch_decodes_each_message_as_it_would_alone() -> None:
    """decode_events (the workers' ingest) skips the per-message PAN and fraction
    searches when the batch's shape rules them out; every result must still be
    decode_event's, whatever else is in the batch."""
    fine = [
        with_(),
        with_("authorization"),
        encode({"type": "watermark", "event_id": "w-1", "occurred_at": "2026-11-27T09:00:00Z"}),
        with_(transmitted_at="2026-11-27T09:00:00.9999999Z"),  # nine digits: truncated
    ]
    for case in CASES:
        if case.source != "terminal":
            continue
        for batch in ([case.raw], [*fine, case.raw], [case.raw, *fine]):
            alone = [decode_event("terminal", raw, SKEW) for raw in batch]
            together = decode_events("terminal", batch, SKEW)
            assert [d.event for d in together] == alone, case.name
    clean = decode_events("terminal", fine[:1] + fine[3:], SKEW)  # no PAN-like digit run
    assert [d.event for d in clean] == [
        decode_event("terminal", r, SKEW) for r in fine[:1] + fine[3:]
    ]
    request = clean[0]
    assert isinstance(request.event, TerminalRequest)
    assert request.occurred_us == to_micros(request.event.occurred_at)
    assert request.transmitted_us == to_micros(request.event.transmitted_at)
    assert clean[1].event.transmitted_at.astimezone(UTC).strftime("%S") == "00"  # type: ignore[union-attr]
