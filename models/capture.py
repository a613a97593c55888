"""Capture files (CONTRACT §4): one ``{"source": ..., "event": {...}}`` per line.

Two ways to read a line, one verdict:

* The fast path decodes the whole line in one typed msgspec pass (a tagged union on
  ``source`` whose ``event`` is the source's own event union), after a PAN pre-check
  done once per block of lines. It only ever *accepts*: a line it cannot accept,
  for whatever reason, goes to the exact path.
* The exact path splits the envelope, then validates the event's own bytes exactly as
  a Kafka message is validated (:func:`models.validation.decode_event`), so the reason
  and the dead-letter bytes are the ones a stream worker would produce.

Any line the fast path accepts, the exact path accepts too, with the same event: the
same struct types decode it, and :func:`models.validation.validate` runs on both paths
(``tests/models/test_capture.py`` checks that they agree).

:func:`feed_lines` runs a block of lines straight into a reconciler in one loop, with
no per-line tuples: the replay's hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar, Final, NamedTuple

import msgspec

from models import pan
from models.events import (
    InputEvent,
    IssuerEvent,
    Source,
    TerminalEvent,
    TransactionEvent,
    Watermark,
)
from models.instants import MICROS, to_micros
from models.reconciler import Applied, Reconciler
from models.transaction import MAX_EVENTS
from models.validation import (
    EXCESS_PRECISION,
    MAX_MESSAGE_BYTES,
    Reason,
    Rejection,
    block_scans,
    decode_event,
    validate,
)


class Envelope(msgspec.Struct, gc=False):
    source: Source
    event: msgspec.Raw


class _TerminalLine(msgspec.Struct, tag_field="source", tag="terminal", gc=False):
    event: TerminalEvent
    source: ClassVar[Source] = "terminal"


class _IssuerLine(msgspec.Struct, tag_field="source", tag="issuer", gc=False):
    event: IssuerEvent
    source: ClassVar[Source] = "issuer"


_ENVELOPE: Final = msgspec.json.Decoder(Envelope)
_TYPED_LINE: Final = msgspec.json.Decoder(_TerminalLine | _IssuerLine)
# The canonical framing of a capture line, as encode_line() and the simulator write it.
LINE_PREFIX: Final[dict[Source, bytes]] = {
    "terminal": b'{"source":"terminal","event":',
    "issuer": b'{"source":"issuer","event":',
}
_TERMINAL_PREFIX: Final = LINE_PREFIX["terminal"]
_ISSUER_PREFIX: Final = LINE_PREFIX["issuer"]

Decoded = tuple[Source, InputEvent | Rejection] | Rejection
"""What a line gives: its source and event, its source and why the event is refused, or
why the line is not a capture line at all."""


def read_line(line: bytes) -> tuple[Source, bytes] | Rejection:
    """Split one capture line into its source and the raw bytes of its event.

    Lines in the canonical layout (as :func:`encode_line` and the simulator write them)
    are split by slicing; anything else is parsed. The slice can only be wrong when the
    line carries more after the event (an extra envelope field), and then the event
    fails to decode and :func:`decode_line` parses the envelope instead.
    """
    if line[-1:] == b"}":
        if line.startswith(_TERMINAL_PREFIX):
            return "terminal", line[len(_TERMINAL_PREFIX) : -1]
        if line.startswith(_ISSUER_PREFIX):
            return "issuer", line[len(_ISSUER_PREFIX) : -1]
    return parse_line(line)


def parse_line(line: bytes) -> tuple[Source, bytes] | Rejection:
    """Split a capture line by parsing its envelope (any key order, extra keys)."""
    try:
        envelope = _ENVELOPE.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:  # ValidationError included
        return Rejection(Reason.INVALID_CAPTURE_LINE, f"not a capture line: {error}"[:200])
    except Exception as error:
        return Rejection(Reason.INVALID_CAPTURE_LINE, f"not a capture line: {type(error).__name__}")
    return envelope.source, bytes(envelope.event)


def event_bytes(line: bytes) -> bytes:
    """The raw bytes of a line's event (for a dead-letter record), else the line."""
    split = read_line(line)
    return line if isinstance(split, Rejection) else split[1]


def decode_line(line: bytes, max_clock_skew: timedelta) -> Decoded:
    """The exact path: validate one line as the stream workers validate a message."""
    split = read_line(line)
    if isinstance(split, Rejection):
        return _line_rejection(split, line)
    source, raw = split
    event = decode_event(source, raw, max_clock_skew)
    if isinstance(event, Rejection):
        # The fast slice may have kept envelope bytes after the event: parse and retry.
        parsed = parse_line(line)
        if isinstance(parsed, Rejection):
            return _line_rejection(parsed, line)
        if parsed != split:
            source, raw = parsed
            event = decode_event(source, raw, max_clock_skew)
    return source, event


class Problem(NamedTuple):
    """A line of a block that was not applied: which, from which source, and why."""

    position: int  # in the block
    source: Source | None
    rejection: Rejection
    event_id: str | None = None


# What the reconciler refuses, as dead-letter reasons (CONTRACT §3; models.transaction).
_REFUSED: Final = {
    Applied.TOO_LATE: Rejection(Reason.TOO_LATE, "the transaction's retention has passed"),
    Applied.TOO_MANY: Rejection(
        Reason.TOO_MANY_EVENTS, f"the transaction already holds {MAX_EVENTS} events"
    ),
}


def feed_lines(
    reconciler: Reconciler,
    lines: Sequence[bytes],
    max_clock_skew: timedelta,
    lanes: Sequence[int] | None = None,
) -> list[Problem]:
    """Validate a block of (stripped, non-empty) lines and apply them in order.

    ``lanes``: the input partition each line was read from (the stream workers;
    :class:`~models.stream_time.Progress`), or None for one lane (the replay).
    Returns the lines that were refused (to the dead-letter output); everything else
    went into ``reconciler``.
    """
    skew_us = round(max_clock_skew.total_seconds() * MICROS)
    may_hold_pans, may_be_too_precise = block_scans(lines)
    decode = _TYPED_LINE.decode
    apply_valid = reconciler.apply_valid
    refused = _REFUSED
    problems: list[Problem] = []
    for index, line in enumerate(lines):
        event: InputEvent | Rejection | None = None
        source: Source | None = None
        if (
            len(line) <= MAX_MESSAGE_BYTES
            and not (may_hold_pans and pan.may_contain_pan(line))
            and not (may_be_too_precise and EXCESS_PRECISION.search(line))
        ):
            try:
                typed = decode(line)
            except Exception:
                pass
            else:
                event, source = typed.event, typed.source
        if event is None:  # the exact path
            decoded = decode_line(line, max_clock_skew)
            if isinstance(decoded, Rejection):
                problems.append(Problem(index, None, decoded))
                continue
            source, event = decoded
            if isinstance(event, Rejection):
                problems.append(Problem(index, source, event))
                continue
        assert source is not None
        lane = 0 if lanes is None else lanes[index]
        if type(event) is Watermark:
            reconciler.apply_watermark(source, to_micros(event.occurred_at), lane)
            continue
        assert isinstance(event, TransactionEvent)
        # On the exact path decode_event has validated already; repeating it is cheap
        # and rare, and keeps one loop for both paths.
        checked = validate(event, skew_us)
        if isinstance(checked, Rejection):
            problems.append(Problem(index, source, checked))
            continue
        occurred, transmitted = checked
        applied = apply_valid(source, event, occurred, transmitted // MICROS, lane)
        if applied in refused:
            problems.append(Problem(index, source, refused[applied], event.event_id))
    return problems


def _line_rejection(rejection: Rejection, line: bytes) -> Rejection:
    if pan.contains_pan(line):
        return Rejection(Reason.PAN_DETECTED, "a 13-19 digit number passing the Luhn check")
    return rejection


def encode_line(source: Source, event: bytes) -> bytes:
    """The capture line for an event's raw JSON bytes (no trailing newline)."""
    return LINE_PREFIX[source] + event + b"}"
