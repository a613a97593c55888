"""Strict decoding of input messages, with a reason code for every rejection (CONTRACT §5).

The order of the checks is part of the contract's promise that no card number leaks:

1. ``pan_detected`` first, on the raw bytes of *every* message, even one that is too
   large or not JSON, so the dead-letter record of any rejected message can be masked
   and a PAN in a broken message is still reported as a PAN.
2. ``too_large`` before parsing, so a 50 MB message never reaches the parser.
3. The typed decode (:mod:`models.events`): JSON, required fields, types, enums, ranges.
4. What a schema cannot say: the ISO 4217 code, and ``transmitted_at`` no later than
   the event's own ``occurred_at`` plus ``max_clock_skew``.

Every reason is a :class:`Reason` value; the detail text is for a human and never
contains the raw message.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import msgspec

from models import currencies, pan
from models.events import (
    InputEvent,
    IssuerEvent,
    Source,
    TerminalEvent,
    TransactionEvent,
)
from models.instants import EPOCH, MICROS, to_micros

MAX_MESSAGE_BYTES: Final = 64 * 1024
_MAX_DETAIL_CHARS: Final = 200


class Reason(enum.StrEnum):
    """Why a message went to the dead-letter topic. Values are part of the DLQ format."""

    PAN_DETECTED = "pan_detected"
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_VALUE = "invalid_value"
    INVALID_TIME = "invalid_time"
    NEGATIVE_AMOUNT = "negative_amount"
    UNKNOWN_CURRENCY = "unknown_currency"
    CLOCK_SKEW = "transmitted_after_occurred"
    TOO_LATE = "too_late"
    TOO_MANY_EVENTS = "too_many_events"
    INVALID_CAPTURE_LINE = "invalid_capture_line"


class Rejection(msgspec.Struct, frozen=True, gc=False):
    """A message we refuse, and why."""

    reason: Reason
    detail: str


_DECODERS: Final[dict[Source, msgspec.json.Decoder[InputEvent]]] = {
    "terminal": msgspec.json.Decoder(TerminalEvent),
    "issuer": msgspec.json.Decoder(IssuerEvent),
}


def _classify(error: msgspec.ValidationError) -> Reason:
    """Map msgspec's validation message onto our reason codes.

    msgspec's messages are stable and specific (``Expected `int` >= 0 - at
    `$.amount_minor```); tests pin each mapping so an upgrade that changes them fails.
    """
    message = str(error)
    if message.startswith("Object missing required field"):
        return Reason.MISSING_FIELD
    if message.startswith("Invalid value") and message.endswith("`$.type`"):
        return Reason.UNKNOWN_TYPE
    if message.startswith("Expected `object`"):
        return Reason.NOT_AN_OBJECT
    if "`$.amount_minor`" in message and ">= 0" in message:
        return Reason.NEGATIVE_AMOUNT
    if message.startswith(("Invalid RFC3339", "Expected `datetime` with a timezone")):
        return Reason.INVALID_TIME
    if ", got `" in message:
        return Reason.WRONG_TYPE
    return Reason.INVALID_VALUE


def _detail(text: str) -> str:
    """A human-readable reason, cut to 200 characters, any card number in it masked.

    msgspec's messages quote decoded values (``Invalid enum value '…'``), and a value
    can hold a PAN spelled with JSON escapes that the raw-bytes check cannot see.
    """
    text = pan.mask_pans(text.encode()).decode("utf-8", "replace")
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 1] + "…"


# msgspec rounds a time to the microsecond; rounding "09:00:00.9999996" gives 09:00:01,
# but the transaction key truncates transmitted_at to the second (CONTRACT §1). Messages
# with more than six fraction digits there are rare (Java's Instant prints nine): they
# are found with one search per block and their transmitted_at re-read, truncated.
EXCESS_PRECISION: Final = re.compile(rb'"transmitted_at"\s*:\s*"[^"]*\.[0-9]{7}')
# The same question asked of pan.shape_of(bytes) (digits as "0"): a fraction of 7+ digits
# anywhere. A cheap block-level filter before the regex.
SEVEN_DIGIT_FRACTION_SHAPE: Final = b".0000000"
_FRACTION_TAIL: Final = re.compile(r"(\.[0-9]{6})[0-9]+")
_INSTANT: Final = msgspec.json.Decoder(datetime)


def _truncate_transmitted_at(raw: bytes, event: TransactionEvent) -> None:
    """Re-read ``transmitted_at`` from ``raw`` with its fraction cut to microseconds."""
    text = msgspec.json.decode(raw, type=_TransmittedAt).transmitted_at
    event.transmitted_at = _INSTANT.decode(
        msgspec.json.encode(_FRACTION_TAIL.sub(r"\1", text, count=1))
    )


class _TransmittedAt(msgspec.Struct):
    transmitted_at: str


def decode_event(source: Source, raw: bytes, max_clock_skew: timedelta) -> InputEvent | Rejection:
    """Decode one message of ``source`` strictly, or say why it is rejected.

    >>> from datetime import timedelta
    >>> decode_event("terminal", b'{"type": "request"}', timedelta(seconds=120)).reason
    <Reason.MISSING_FIELD: 'missing_field'>
    """
    return _decode(source, raw, _skew_us(max_clock_skew), True, True).event


class Decoded(NamedTuple):
    """A decoded message and its instants (µs since the epoch), so nobody converts the
    datetimes again: ``occurred_us`` -1 for a rejection, ``transmitted_us`` -1 unless
    the event belongs to a transaction."""

    event: InputEvent | Rejection
    occurred_us: int
    transmitted_us: int


def decode_events(
    source: Source, raws: Sequence[bytes], max_clock_skew: timedelta
) -> list[Decoded]:
    """:func:`decode_event` for a batch of messages, with the same result for each.

    The PAN and fraction-length checks first ask the whole batch's
    :func:`~models.pan.shape_of` (one pass at C speed); only the messages of a batch
    that might hold a card number or a nine-digit fraction are searched one by one.
    """
    may_hold_pans, may_be_too_precise = block_scans(raws)
    skew_us = _skew_us(max_clock_skew)
    return [_decode(source, raw, skew_us, may_hold_pans, may_be_too_precise) for raw in raws]


def block_scans(block: Sequence[bytes]) -> tuple[bool, bool]:
    """Whether any message (or capture line) of ``block`` may hold a PAN, and whether any
    may hold a fraction of seven digits or more: one :func:`~models.pan.shape_of` pass
    for the whole block. False means no message needs that search."""
    shape = pan.shape_of(b"\n".join(block))
    return pan.may_contain_pan(b"", shape), SEVEN_DIGIT_FRACTION_SHAPE in shape


def _skew_us(max_clock_skew: timedelta) -> int:
    return round(max_clock_skew.total_seconds() * MICROS)


_PAN_REJECTION: Final = Rejection(
    Reason.PAN_DETECTED, "a 13-19 digit number passing the Luhn check"
)


def _decode(
    source: Source, raw: bytes, skew_us: int, scan_pans: bool, scan_precision: bool
) -> Decoded:
    """The checks in the contract's order (module docstring); ``scan_pans`` and
    ``scan_precision`` False only when the caller knows the bytes cannot match."""
    if scan_pans and pan.contains_pan(raw):
        return Decoded(_PAN_REJECTION, -1, -1)
    if len(raw) > MAX_MESSAGE_BYTES:
        return Decoded(
            Rejection(Reason.TOO_LARGE, f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}"), -1, -1
        )
    try:
        event = _DECODERS[source].decode(raw)
    except msgspec.ValidationError as error:
        return Decoded(Rejection(_classify(error), _detail(str(error))), -1, -1)
    except msgspec.DecodeError as error:
        return Decoded(Rejection(Reason.INVALID_JSON, _detail(str(error))), -1, -1)
    except UnicodeDecodeError as error:  # msgspec raises it for invalid UTF-8 in strings
        detail = _detail(f"not UTF-8: {error.reason}")
        return Decoded(Rejection(Reason.INVALID_JSON, detail), -1, -1)
    except RecursionError:  # an unknown field nested a thousand levels deep
        return Decoded(Rejection(Reason.INVALID_JSON, "nested too deeply"), -1, -1)
    except Exception as error:
        detail = _detail(f"undecodable: {type(error).__name__}")
        return Decoded(Rejection(Reason.INVALID_JSON, detail), -1, -1)
    if isinstance(event, TransactionEvent):
        if scan_precision and EXCESS_PRECISION.search(raw):
            _truncate_transmitted_at(raw, event)
        checked = validate(event, skew_us)
        if isinstance(checked, Rejection):
            return Decoded(checked, -1, -1)
        return Decoded(event, checked[0], checked[1])
    return Decoded(event, to_micros(event.occurred_at), -1)


def validate(event: TransactionEvent, max_clock_skew_us: int) -> Rejection | tuple[int, int]:
    """The rules a schema cannot express; on success, the event's two instants.

    Returns ``(occurred_us, transmitted_us)`` so the caller does not convert the
    datetimes a second time: the reconciler wants them as integers anyway.
    """
    if not event.event_id.isprintable():
        return Rejection(Reason.INVALID_VALUE, "event_id contains control characters")
    stan = event.stan
    if not (stan.isdigit() and stan.isascii()):
        return Rejection(Reason.INVALID_VALUE, _detail(f"stan {stan!r} is not 6 digits"))
    code = event.response_code
    if code is not None and not code.isascii():
        return Rejection(Reason.INVALID_VALUE, _detail(f"response_code {code!r} is not ASCII"))
    if event.currency not in currencies.CURRENCIES:
        return Rejection(
            Reason.UNKNOWN_CURRENCY, _detail(f"{event.currency!r} is not an ISO 4217 code")
        )
    # to_micros() inlined: this runs for every event.
    delta = event.occurred_at - EPOCH
    occurred = (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds
    delta = event.transmitted_at - EPOCH
    transmitted = (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds
    if transmitted - occurred > max_clock_skew_us:
        return Rejection(
            Reason.CLOCK_SKEW,
            f"transmitted_at is {(transmitted - occurred) / MICROS:.3f} s after occurred_at "
            f"(max_clock_skew {max_clock_skew_us / MICROS:g} s)",
        )
    return occurred, transmitted
