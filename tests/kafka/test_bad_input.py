"""CONTRACT §5 and §6 through Kafka: bad input goes to the DLQ, never stops the worker,
loses nothing valid around it, and no card number gets past the ingest.

One message for every §5 case and three card numbers (§6), produced straight to the
input topics between the events of two valid transactions, on the same partitions.
Each transaction's verdict needs every one of its valid events (a lost one changes
the kinds that fire), and each bad message carries one of their keys (a bad message
wrongly accepted changes them too).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgspec

from models.alerts import Alert
from models.config import DetectionConfig
from models.dead_letter import DeadLetter
from models.final_states import firing_set
from models.pan import luhn_valid
from models.validation import MAX_MESSAGE_BYTES, Reason
from streams.kafka_clients import producer, read_topic
from streams.settings import Settings
from streams.topics import create_topics
from tests.factories import capture, encode, event, far_future_watermark
from tests.kafka.pipeline import read_alerts, replay_alerts, wait, workers
from tests.kafka.waiting import wait_consuming

A: dict[str, Any] = {"terminal": "T-BAD-A", "stan": "000201"}  # timeout, debited twice
B: dict[str, Any] = {
    "terminal": "T-BAD-B",
    "stan": "000202",
}  # approved, debited a different amount
EXPECTED = {"T-BAD-A": {"unmatched_debit", "duplicate_debit"}, "T-BAD-B": {"amount_mismatch"}}

PAN_TOKEN = "4012888888881881"  # as the card_token
PAN_GROUPED = "5500005555555559"  # printed "5500 0055 5555 5559" in an unknown field
PAN_ESCAPED = "4111111111111111"  # its first digit spelled as a JSON escape
PANS = (PAN_TOKEN, PAN_GROUPED, PAN_ESCAPED)


@dataclasses.dataclass
class Message:
    """One message to produce; ``reason`` None: valid (``event`` is then set)."""

    source: str
    partition: int
    raw: bytes | None
    reason: Reason | None = None
    event: dict[str, Any] | None = None
    offset: int = -1  # filled in from the producer's RecordMetadata


def valid(source: str, partition: int, event_: dict[str, Any]) -> Message:
    return Message(source, partition, encode(event_), event=event_)


def bad(source: str, partition: int, reason: Reason, raw: bytes | None) -> Message:
    return Message(source, partition, raw, reason=reason)


def without(event_: dict[str, Any], field: str) -> dict[str, Any]:
    return {name: value for name, value in event_.items() if name != field}


def masked(pan: str) -> str:
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def plan() -> list[Message]:
    """Valid and bad messages interleaved on the same partitions, in send order."""
    huge = encode(event("debit", 1.4, padding="x" * (MAX_MESSAGE_BYTES + 4096), **B))
    escaped = encode(event("reversal", 40.0, memo="@" * 8, **A)).replace(
        b"@" * 8, b"\\u0034" + PAN_ESCAPED[1:].encode()
    )
    return [
        valid("terminal", 0, event("request", 0.1, **A)),
        bad("terminal", 0, Reason.INVALID_JSON, b'{"event_id": "bad-json", "type": "request",'),
        valid("issuer", 0, event("authorization", 1.0, approved=True, response_code="00", **A)),
        bad("issuer", 0, Reason.NEGATIVE_AMOUNT, encode(event("refund", 1.1, amount=-1, **A))),
        valid("issuer", 0, event("debit", 1.2, **A)),
        bad("terminal", 1, Reason.MISSING_FIELD, encode(without(event("reversal", 0.3, **B), "stan"))),
        valid("terminal", 1, event("request", 0.2, **B)),
        bad("issuer", 1, Reason.WRONG_TYPE, encode({**event("debit", 1.3, **B), "amount_minor": "13000"})),
        valid("issuer", 1, event("authorization", 1.0, approved=True, **B)),
        bad("issuer", 1, Reason.UNKNOWN_CURRENCY, encode(event("refund", 5.0, currency="QQQ", **B))),
        valid("issuer", 1, event("debit", 1.3, amount=13_000, **B)),
        bad("terminal", 1, Reason.PAN_DETECTED, encode(event("reversal", 3.0, card=PAN_TOKEN, **B))),
        valid("terminal", 1, event("outcome", 2.0, outcome="approved", **B)),
        bad("terminal", 2, Reason.TOO_LARGE, huge),
        bad("terminal", 2, Reason.INVALID_JSON, None),  # a tombstone
        valid("issuer", 2, event("debit", 1.5, **A)),
        # transmitted_at (the sale, at 0 s) 300 s after this event's own occurred_at
        bad("issuer", 2, Reason.CLOCK_SKEW, encode(event("reversal", -300.0, **A))),
        bad("issuer", 3, Reason.PAN_DETECTED,
            encode(event("reversal", 4.0, note="card 5500 0055 5555 5559", **A))),
        valid("terminal", 3, event("outcome", 31.0, outcome="timeout", **A)),
        bad("terminal", 3, Reason.PAN_DETECTED, escaped),
    ]  # fmt: skip


def produce(settings: Settings, messages: list[Message]) -> None:
    """Send each message to its partition, one at a time, recording its offset."""
    client = producer(settings)
    try:
        for message in messages:
            topic = settings.source_topic(message.source)
            key = b"tombstone" if message.raw is None else None
            meta = client.send(topic, key=key, value=message.raw, partition=message.partition)
            message.offset = meta.get(timeout=30).offset
    finally:
        client.close()


def watermarks(settings: Settings) -> list[Message]:
    """A far-future watermark on every partition of both input topics."""
    return [
        valid(source, partition, far_future_watermark())
        for source in ("terminal", "issuer")
        for partition in range(settings.input_partitions)
    ]


def read_values(settings: Settings, topic: str) -> list[bytes]:
    """Every record's value (the workers are caught up: nothing is still in flight)."""
    return [record.value or b"" for record in read_topic(settings, topic, until_idle=0.2)]


def test_every_bad_message_goes_to_the_dlq_and_nothing_valid_is_lost(
    settings: Settings, tmp_path: Path
) -> None:
    assert all(luhn_valid(pan.encode()) for pan in PANS)
    # Only watermarks close windows here (no idle advance during the test).
    settings = dataclasses.replace(settings, detection=DetectionConfig(idle_advance=3600))
    messages = plan()
    assert settings.input_partitions > max(m.partition for m in messages)
    create_topics(settings)
    with workers(settings, tmp_path) as running:
        wait_consuming(settings, running)  # and the group coordinator exists
        produce(settings, messages)
        wait(settings, running, timeout=120)
        assert running[0].alive, running[0].log_tail()
        assert read_alerts(settings) == []  # windows still open: nothing judged yet
        # After all the bad input, the worker still takes input and closes windows.
        closing = watermarks(settings)
        produce(settings, closing)
        wait(settings, running, timeout=120)
        assert running[0].alive, running[0].log_tail()
        log = running[0].log_path

    rejected = [m for m in messages if m.reason is not None]
    assert {m.reason for m in rejected} >= {
        Reason.INVALID_JSON, Reason.MISSING_FIELD, Reason.WRONG_TYPE, Reason.NEGATIVE_AMOUNT,
        Reason.UNKNOWN_CURRENCY, Reason.CLOCK_SKEW, Reason.TOO_LARGE, Reason.PAN_DETECTED,
    }  # fmt: skip

    dlq = read_values(settings, settings.dlq_topic)
    dead = [msgspec.json.decode(value, type=DeadLetter) for value in dlq]
    found = {(d.topic, d.partition, d.offset): d for d in dead}
    # at_least_once: a redelivered message (after a rebalance) may be refused twice, the same way
    assert all(d == found[(d.topic, d.partition, d.offset)] for d in dead)
    expected = {(settings.source_topic(m.source), m.partition, m.offset): m for m in rejected}
    assert {k: d.reason for k, d in found.items()} == {k: m.reason for k, m in expected.items()}
    for where, message in expected.items():
        record = found[where]
        assert record.source == message.source
        raw = message.raw or b""
        assert record.raw_size == len(raw)
        stored = record.raw_bytes()
        if message.reason == Reason.PAN_DETECTED:
            continue  # checked below
        if message.reason == Reason.TOO_LARGE:
            assert record.raw_truncated and stored == raw[:MAX_MESSAGE_BYTES]
        else:
            assert not record.raw_truncated and stored == raw

    pan_records = [found[k] for k, m in expected.items() if m.reason == Reason.PAN_DETECTED]
    stored_text = b"\n".join(d.raw_bytes() for d in pan_records).decode()
    for shown in (masked(PAN_TOKEN), "5500 00** **** 5559", masked(PAN_ESCAPED)):
        assert shown in stored_text

    alerts = read_alerts(settings)
    outputs = {
        "dlq raw bytes": [d.raw_bytes() for d in dead],
        "dlq details": [d.detail.encode() for d in dead],
        "dlq records": dlq,
        "alerts": read_values(settings, settings.alerts_topic),
        "re-keyed topic": read_values(settings, settings.repartition_topic),
        **{name: read_values(settings, name) for name in settings.changelog_topics},
        "worker log": [log.read_bytes()],
    }
    for pan in PANS:
        spellings = {pan, f"{pan[:4]} {pan[4:8]} {pan[8:12]} {pan[12:]}", "\\u0034" + pan[1:]}
        for what, values in outputs.items():
            for value in values:
                for spelling in spellings:
                    assert spelling.encode() not in value, f"PAN {spelling!r} in the {what}"

    by_terminal: dict[str, set[str]] = {terminal: set() for terminal in EXPECTED}
    for _id, kind, terminal, _stan, _sent in firing_set(alerts):
        assert terminal in by_terminal, f"unexpected alert {kind} on {terminal}"
        by_terminal[terminal].add(kind)
    assert by_terminal == EXPECTED
    assert firing_set(alerts) == firing_set(equivalent_replay(messages, tmp_path, settings))


def equivalent_replay(messages: list[Message], tmp_path: Path, settings: Settings) -> list[Alert]:
    """The offline replay of the valid messages in send order (a capture's end closes
    every window, as the far-future watermarks do)."""
    path = tmp_path / "valid.jsonl"
    path.write_bytes(capture([(m.source, m.event) for m in messages if m.event is not None]))
    return replay_alerts(path, tmp_path, settings)
