"""Send recorded captures (CONTRACT §4) to the input topics, as a gateway would have.

Each event goes out byte for byte as recorded, valid or not: the point of a capture
is to exercise the workers, dead-letter path included, so nothing is parsed, fixed or
filtered here. Messages carry no key: the workers re-key every event by transaction,
and a producer's choice of key must not change any verdict.

Watermarks are the exception to "one line, one message". A worker moves a source's
progress to the *minimum* over that topic's partitions (a watermark vouches only for
the partition it travelled on), so a watermark sent to one partition would never count.
It is therefore sent to every partition of its topic, after everything sent before it
there (one idempotent producer keeps each partition in send order).

Lines that are not capture lines at all (no ``source``/``event`` envelope) have no
topic to go to: they are counted and named in the summary, not sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
from kafka.errors import KafkaError

from models.capture import read_line
from models.validation import Rejection
from streams.bulk_send import BulkSender
from streams.kafka_clients import BrokerError, describe, partition_counts, producer
from streams.settings import Settings

# Flush this often: kafka-python 3 has no bound on the memory of unsent batches.
_FLUSH_EVERY: Final = 50_000
_EXAMPLES: Final = 5


class _Typed(msgspec.Struct):
    type: Any = None


_TYPE: Final = msgspec.json.Decoder(_Typed)


def is_watermark(raw: bytes) -> bool:
    """Whether an event is a watermark, reading only its ``type`` (cheap, never raises).

    >>> is_watermark(b'{"type":"watermark","occurred_at":"2026-11-27T09:00:00Z"}')
    True
    >>> is_watermark(b'{"type":"debit","reason":"watermark"}'), is_watermark(b"{oops")
    (False, False)
    """
    if b"watermark" not in raw:
        return False
    try:
        return bool(_TYPE.decode(raw).type == "watermark")
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False


@dataclasses.dataclass
class ProduceSummary:
    """What was sent. ``watermarks`` counts watermark events, each sent to every
    partition of its topic (``watermark_messages`` counts those messages)."""

    lines: int = 0
    events: Counter[str] = dataclasses.field(default_factory=Counter)
    watermarks: Counter[str] = dataclasses.field(default_factory=Counter)
    watermark_messages: Counter[str] = dataclasses.field(default_factory=Counter)
    not_capture_lines: int = 0
    not_capture_examples: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        return sum(self.events.values()) + sum(self.watermark_messages.values())


class Sender:
    """One idempotent producer over both input topics, with delivery errors collected.

    The topics must exist (BrokerError at once otherwise, rather than a stalled first
    send). ``send_event`` and ``send_watermark`` never block on delivery; :meth:`close`
    flushes and raises BrokerError if any message was not delivered. Shared by the capture
    producer and the live simulator.
    """

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self._partitions = partition_counts(settings, topics)
        self._producer = producer(settings)
        self._failures = 0
        self._first_failure: str | None = None
        self._unflushed = 0
        self._sent: Counter[str] = Counter()

    def partitions(self, topic: str) -> list[int]:
        """``topic``'s partition numbers (one of the topics given at construction)."""
        return list(range(self._partitions[topic]))

    def _failed(self, error: BaseException) -> None:
        self._failures += 1
        if self._first_failure is None:
            self._first_failure = describe(error)

    def _send(self, topic: str, value: bytes, partition: int | None) -> None:
        try:
            future = self._producer.send(topic, value=value, key=None, partition=partition)
        except KafkaError as error:
            raise BrokerError(f"cannot send to {topic!r}: {describe(error)}") from error
        future.add_errback(self._failed)
        self._unflushed += 1
        if self._unflushed >= _FLUSH_EVERY:
            self.flush()

    def send_event(self, topic: str, value: bytes) -> None:
        """Send one event to ``topic``, to its partitions in turn (no key).

        One message each, as a fleet keyed by terminal spreads its events: this sender
        paces live traffic, where the join waits for its slowest input partition
        (docs/streaming.md, "Progress per input partition"). Runs of 256 per partition
        left each partition silent for seconds at demo rates; bulk loads use
        :class:`streams.bulk_send.BulkSender`.
        """
        partitions = self.partitions(topic)
        sent = self._sent[topic]
        self._sent[topic] = sent + 1
        self._send(topic, value, partitions[sent % len(partitions)])

    def send_watermark(self, topic: str, value: bytes) -> int:
        """Send a watermark to every partition of ``topic``; return how many."""
        partitions = self.partitions(topic)
        for partition in partitions:
            self._send(topic, value, partition)
        return len(partitions)

    def flush(self) -> None:
        try:
            self._producer.flush()
        except KafkaError as error:
            raise BrokerError(f"cannot deliver messages: {describe(error)}") from error
        self._unflushed = 0
        if self._failures:
            raise BrokerError(
                f"{self._failures} message(s) were not delivered; first: {self._first_failure}"
            )

    def close(self) -> None:
        """Flush everything, then close; BrokerError if something was not delivered."""
        try:
            self.flush()
        finally:
            self._producer.close()

    def abort(self) -> None:
        """Close after a failure or an interrupt: a second of grace, no more errors."""
        # Already failing: the first error is the one to tell.
        with contextlib.suppress(Exception):
            self._producer.close(timeout=1)


def _lines(paths: Iterable[Path]) -> Iterable[tuple[str, bytes]]:
    """(``path:line number``, stripped line) for every non-blank line."""
    for path in paths:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if stripped:
                    yield f"{path}:{number}", stripped


def produce_capture(
    settings: Settings,
    paths: Sequence[Path],
    *,
    on_line: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Send every event of the capture files, in order, to its source's topic.

    Raises OSError if a file cannot be read, BrokerError if the broker is unreachable,
    a topic is missing, or a message could not be delivered. ``on_line`` is called with
    the running line count every 10,000 lines.
    """
    for path in paths:  # fail before sending anything if a file is missing
        if not path.is_file():
            raise FileNotFoundError(2, "no such file", str(path))
    started = time.perf_counter()
    summary = ProduceSummary()
    sender = BulkSender(settings, [settings.terminal_topic, settings.issuer_topic])
    try:
        _send_lines(settings, sender, paths, summary, on_line)
    except BaseException:
        sender.abort()
        raise
    sender.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _send_lines(
    settings: Settings,
    sender: Sender | BulkSender,
    paths: Sequence[Path],
    summary: ProduceSummary,
    on_line: Callable[[int], None] | None,
) -> None:
    for where, line in _lines(paths):
        summary.lines += 1
        split = read_line(line)
        if isinstance(split, Rejection):
            summary.not_capture_lines += 1
            if len(summary.not_capture_examples) < _EXAMPLES:
                summary.not_capture_examples.append(where)
            continue
        source, raw = split
        topic = settings.source_topic(source)
        if is_watermark(raw):
            summary.watermarks[topic] += 1
            summary.watermark_messages[topic] += sender.send_watermark(topic, raw)
        else:
            summary.events[topic] += 1
            sender.send_event(topic, raw)
        if on_line is not None and summary.lines % 10_000 == 0:
            on_line(summary.lines)
