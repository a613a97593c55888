"""The ingest step: validate one input message and say where it goes.

Pure (no Kafka): the Faust agent in :mod:`streams.worker.app` calls :func:`route` for
each message of the two input topics and sends what it returns. Validation is the
offline replay's own (:func:`models.validation.decode_events`), so a message the replay
would refuse is refused here with the same reason, and lands in ``debitwatch.dlq``
with its topic, partition and offset, its card numbers masked (CONTRACT §5, §6).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

from models.capture import encode_line
from models.dead_letter import DeadLetter, dead_letter
from models.events import Source, TransactionEvent, Watermark
from models.instants import MICROS
from models.transaction import transaction_key
from models.validation import Reason, Rejection, decode_events
from streams.worker.wire import (
    ORIGIN_HEADER,
    WATERMARK_KEY,
    WatermarkControl,
    encode_control,
    encode_origin,
    join_partition,
)


class Send(NamedTuple):
    """One message for the re-keyed topic."""

    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def route(
    source: Source,
    raw: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    join_partitions: int,
    input_partitions: int,
    max_clock_skew: timedelta,
    counts: collections.Counter[tuple[str, str]] | None = None,
    times: list[int] | None = None,
) -> list[Send] | DeadLetter:
    """Where one input message goes: :func:`route_batch` of one message."""
    (routed,) = route_batch(
        source,
        [(offset, raw)],
        topic=topic,
        partition=partition,
        join_partitions=join_partitions,
        input_partitions=input_partitions,
        max_clock_skew=max_clock_skew,
        counts=counts,
        times=times,
    )
    return routed


def route_batch(
    source: Source,
    messages: Sequence[tuple[int, bytes | None]],
    *,
    topic: str,
    partition: int,
    join_partitions: int,
    input_partitions: int,
    max_clock_skew: timedelta,
    counts: collections.Counter[tuple[str, str]] | None = None,
    times: list[int] | None = None,
) -> list[list[Send] | DeadLetter]:
    """Where each input message ``(offset, value)`` of one input partition goes: the
    join partition(s) it feeds, or the DLQ.

    A valid event goes to one partition, keyed by its transaction key; a watermark is
    copied to every partition (CONTRACT §1.3), tagged with its input partition.
    ``counts``, if given, counts each valid event by (source, type), for the metrics;
    ``times``, if given, gets each message's event time in µs appended (-1 if refused),
    for :mod:`streams.worker.event_order`. The batch is decoded with
    :func:`~models.validation.decode_events` (one PAN pre-check for all of it).
    """
    decoded = iter(decode_events(source, [v for _, v in messages if v is not None], max_clock_skew))
    out: list[list[Send] | DeadLetter] = []
    for offset, raw in messages:
        if raw is None:  # a tombstone on an input topic: nothing to judge, but say so
            if times is not None:
                times.append(-1)
            out.append(
                dead_letter(
                    Reason.INVALID_JSON,
                    "empty message (null value): not a JSON object",
                    b"",
                    source=source,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            )
            continue
        event, occurred_us, transmitted_us = next(decoded)
        if isinstance(event, Rejection):
            if times is not None:
                times.append(-1)
            out.append(
                dead_letter(
                    event.reason,
                    event.detail,
                    raw,
                    source=source,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            )
            continue
        if counts is not None:
            counts[(source, type(event).__struct_config__.tag)] += 1  # type: ignore[index]
        if times is not None:
            times.append(occurred_us)
        if type(event) is Watermark:
            control = encode_control(
                WatermarkControl(
                    source=source,
                    input_partition=partition,
                    input_partitions=input_partitions,
                    at_us=occurred_us,
                    event_id=event.event_id,
                )
            )
            out.append([Send(p, WATERMARK_KEY, control, []) for p in range(join_partitions)])
            continue
        assert isinstance(event, TransactionEvent)
        key = transaction_key(event.terminal_id, event.stan, transmitted_us // MICROS)
        out.append(
            [
                Send(
                    join_partition(event.merchant_id, join_partitions),
                    key.encode(),
                    encode_line(source, raw),
                    [(ORIGIN_HEADER, encode_origin(topic, partition, offset))],
                )
            ]
        )
    return out
