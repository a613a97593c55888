"""What travels on the re-keyed topic between the ingest and the join.

Three kinds of message, told apart by their first bytes so the hot path never decodes
twice:

* an **event**: the capture line of CONTRACT §4 (``{"source":"terminal","event":{…}}``),
  keyed by its transaction key, so the join feeds runs of them to
  :func:`models.capture.feed_lines` exactly as ``debitwatch replay`` does. A header
  carries where the event came from (topic, partition, offset): for dead-letter
  records the join itself makes (``too_late``, ``too_many_events``), and for the
  join's per-input-partition progress (the *lanes* of
  :class:`models.stream_time.Progress`).
* a **watermark** (``{"control":"watermark",…}``): one input partition's watermark,
  copied to every partition of the join (CONTRACT §1.3). The join moves a source's
  lane of that input partition; a source's progress is its *smallest* lane: a
  watermark on input partition 0 says nothing about events still unread on partition 1.
* a **tick** (``{"control":"tick",…}``): an idle advance (CONTRACT §3) of one input
  partition's lane, decided by the worker's timer and sent through the topic, so that
  it is ordered with the events and a restarted worker replays it from the log like
  any other message.

Events are partitioned by ``terminal_id`` (Kafka's murmur2, as the Java client would
partition a message keyed by it), not by the whole transaction key: both sides of a
transaction share the terminal, so they still meet on one partition, and the "paid
again" lookup of the scorer (a later sale at the same terminal) stays local.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from kafka.partitioner.default import murmur2

from models.events import Source

CONTROL_PREFIX: Final = b'{"control":'
ORIGIN_HEADER: Final = "dw-origin"
WATERMARK_KEY: Final = b"~watermark"
TICK_KEY: Final = b"~tick"


class WatermarkControl(msgspec.Struct, tag_field="control", tag="watermark"):
    source: Source
    input_partition: int
    input_partitions: int
    at_us: int
    event_id: str


class TickControl(msgspec.Struct, tag_field="control", tag="tick"):
    source: Source
    at_us: int
    # The lane (input partition) it moves; None: every lane (ticks written before lanes).
    input_partition: int | None = None


Control = WatermarkControl | TickControl
_CONTROL_DECODER: Final = msgspec.json.Decoder(Control)
_ENCODER: Final = msgspec.json.Encoder()


def join_partition(merchant_id: str, partitions: int) -> int:
    """The join partition of every event of ``merchant_id`` (all its terminals): Kafka's
    murmur2 partitioner, so a Java producer keyed by merchant would agree.

    Remembered per merchant: kafka-python's murmur2 is pure Python (~7 µs an event in
    the ingest, measured), and a fleet has far fewer merchants than events.
    """
    key = (merchant_id, partitions)
    partition = _JOIN_PARTITIONS.get(key)
    if partition is None:
        if len(_JOIN_PARTITIONS) >= _JOIN_PARTITIONS_KEPT:
            _JOIN_PARTITIONS.clear()  # a bound, not an LRU: refilling is cheap
        partition = (int(murmur2(merchant_id.encode())) & 0x7FFFFFFF) % partitions
        _JOIN_PARTITIONS[key] = partition
    return partition


_JOIN_PARTITIONS: dict[tuple[str, int], int] = {}
_JOIN_PARTITIONS_KEPT: Final = 200_000


def encode_control(control: Control) -> bytes:
    return _ENCODER.encode(control)


def decode_control(value: bytes) -> Control:
    control: Control = _CONTROL_DECODER.decode(value)
    return control


def is_control(value: bytes) -> bool:
    return value.startswith(CONTROL_PREFIX)


def encode_origin(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}\x1f{partition}\x1f{offset}".encode()


def decode_origin(header: bytes | None) -> tuple[str | None, int | None, int | None]:
    """``(topic, partition, offset)`` of an event's input message, or Nones if absent."""
    if not header:
        return None, None, None
    try:
        topic, partition, offset = header.decode().split("\x1f")
        return topic, int(partition), int(offset)
    except ValueError:
        return None, None, None


def origin_lane(header: bytes | None) -> int:
    """The input partition of an event's input message: its lane in the join (0 if
    the header is missing or unreadable; the hot path, so no full decode)."""
    if not header:
        return 0
    fields = header.split(b"\x1f")
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return 0


ControlKind = Literal["watermark", "tick"]
