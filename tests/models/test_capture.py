"""Capture lines (CONTRACT §4): the fast path and the exact path give the same answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.capture import Decoded, decode_line, encode_line, event_bytes, feed_lines
from models.events import Source, TransactionEvent
from models.reconciler import Applied, Reconciler
from models.validation import Rejection
from tests.factories import encode, event

SKEW = timedelta(seconds=120)
RAW = encode(event("debit", 1.0))

LINES = {
    "canonical": encode_line("issuer", RAW),
    "spaces": b'{ "source" : "issuer" , "event" : ' + RAW + b" }",
    "event_first": b'{"event":' + RAW + b',"source":"issuer"}',
    "extra_envelope_field": b'{"source":"issuer","event":' + RAW + b',"seq":7}',
    "wrong_source": encode_line("terminal", RAW),  # a debit is not a terminal event
    "unknown_source": b'{"source":"pos","event":' + RAW + b"}",
    "no_event": b'{"source":"issuer"}',
    "not_json": b"not json",
    "event_not_object": b'{"source":"issuer","event":"debit"}',
    "watermark": encode_line(
        "terminal", b'{"type":"watermark","event_id":"w","occurred_at":"2026-11-27T09:00:00Z"}'
    ),
    "pan_in_envelope": b'{"source":"issuer","event":' + RAW + b',"note":"4111111111111111"}',
}


class Recorder(Reconciler):
    """Records what :func:`feed_lines` hands over (a fake of pure logic: no I/O)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[object, ...]] = []

    def apply_valid(
        self, source: Source, event: TransactionEvent, occurred: int, second: int, lane: int = 0
    ) -> Applied:
        self.seen.append((source, type(event).__name__, event))
        return Applied.ACCEPTED

    def apply_watermark(self, source: Source, at_us: int, lane: int = 0) -> Applied:
        self.seen.append((source, "Watermark"))
        return Applied.WATERMARK


def fast(line: bytes) -> tuple[object, ...]:
    """What the replay's block loop makes of one line, in :func:`describe`'s terms."""
    recorder = Recorder()
    problems = feed_lines(recorder, [line], SKEW)
    if problems:
        (problem,) = problems
        if problem.source is None:
            return ("rejected", problem.rejection.reason)
        return (problem.source, "rejected", problem.rejection.reason)
    (seen,) = recorder.seen
    return seen


def describe(decoded: Decoded) -> tuple[object, ...]:
    if isinstance(decoded, Rejection):
        return ("rejected", decoded.reason)
    source, event_ = decoded
    if isinstance(event_, Rejection):
        return (source, "rejected", event_.reason)
    if type(event_).__name__ == "Watermark":
        return (source, "Watermark")
    return (source, type(event_).__name__, event_)


@pytest.mark.parametrize("name", sorted(LINES))
def test_fast_path_agrees_with_the_exact_path(name: str) -> None:
    line = LINES[name]
    assert fast(line) == describe(decode_line(line, SKEW))


def test_canonical_extra_field_and_reordered_lines_decode_the_same_event() -> None:
    expected = describe(decode_line(LINES["canonical"], SKEW))
    for name in ("spaces", "event_first", "extra_envelope_field"):
        assert describe(decode_line(LINES[name], SKEW)) == expected, name


def test_pan_outside_the_event_is_dropped_with_the_envelope() -> None:
    # §6 speaks of PANs inside an event. One in an envelope field is not part of the
    # event: both paths accept the event, and the PAN is kept nowhere.
    line = LINES["pan_in_envelope"]
    exact = decode_line(line, SKEW)
    assert fast(line) == describe(exact)
    assert describe(exact)[1] == "IssuerDebit"
    assert "4111111111111111" not in repr(exact)


def test_event_bytes_of_a_line() -> None:
    assert event_bytes(LINES["canonical"]) == RAW
    assert event_bytes(b"not json") == b"not json"
