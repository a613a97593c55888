"""Bulk sends for ``debitwatch produce``: whole record batches, not one call per message.

kafka-python (and aiokafka's ``send``) cost tens of microseconds of Python per message:
a 450,000-event capture took over a minute to produce. aiokafka's batch API builds a
record batch of up to ~1 MB per partition and ships it in one call (measured: see
docs/PERFORMANCE.md). Used only for recorded captures, where nothing is paced; live
traffic keeps the per-message :class:`streams.produce.Sender`.

Same promises as ``Sender``: the topics must exist; a partition receives its messages
in the order given (one idempotent producer, batches of a partition shipped in order);
:meth:`close` raises BrokerError if anything was not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka_clients import BrokerError, describe, partition_counts
from streams.settings import Settings

_BATCH_BYTES: Final = 900_000  # under the broker's default max.message.bytes (1 MB)
_IN_FLIGHT: Final = 16  # batches shipped before waiting for acknowledgements
_STICKY_RUN: Final = 2_000  # keyless events: this many to a partition, then the next


class BulkSender:
    """A synchronous facade over an aiokafka producer on a private event loop."""

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self._partitions = partition_counts(settings, topics)
        self._loop = asyncio.new_event_loop()
        self._producer = self._run(self._start(settings))
        self._batches: dict[tuple[str, int], Any] = {}
        self._shipped: list[asyncio.Future[Any]] = []
        self._sent: Counter[str] = Counter()

    @staticmethod
    async def _start(settings: Settings) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(  # aiokafka wants to be created inside its loop
            bootstrap_servers=settings.bootstrap,
            client_id="debitwatch-produce",
            acks="all",
            enable_idempotence=True,
            max_batch_size=_BATCH_BYTES,
            max_request_size=_BATCH_BYTES + 100_000,
        )
        await producer.start()
        return producer

    def _run(self, awaitable: Any) -> Any:
        try:
            return self._loop.run_until_complete(awaitable)
        except KafkaError as error:
            raise BrokerError(f"cannot deliver messages: {describe(error)}") from error

    def partitions(self, topic: str) -> list[int]:
        return list(range(self._partitions[topic]))

    def send_event(self, topic: str, value: bytes) -> None:
        """Send one keyless event; partitions take turns in runs of ``_STICKY_RUN``."""
        partitions = self.partitions(topic)
        sent = self._sent[topic]
        self._sent[topic] = sent + 1
        self._append(topic, partitions[(sent // _STICKY_RUN) % len(partitions)], value)

    def send_watermark(self, topic: str, value: bytes) -> int:
        """A watermark to every partition of ``topic``, after what each already has."""
        partitions = self.partitions(topic)
        for partition in partitions:
            self._append(topic, partition, value)
        return len(partitions)

    def _append(self, topic: str, partition: int, value: bytes) -> None:
        key = (topic, partition)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = self._producer.create_batch()
        if batch.append(key=None, value=value, timestamp=None) is None:
            self._ship(topic, partition, batch)
            batch = self._batches[key] = self._producer.create_batch()
            if batch.append(key=None, value=value, timestamp=None) is None:
                raise BrokerError(f"a message of {len(value)} bytes is larger than a batch")

    def _ship(self, topic: str, partition: int, batch: Any) -> None:
        batch.close()
        self._shipped.append(
            self._run(self._producer.send_batch(batch, topic, partition=partition))
        )
        if len(self._shipped) >= _IN_FLIGHT:
            self._wait()

    def _wait(self) -> None:
        shipped, self._shipped = self._shipped, []
        if shipped:  # gather() of nothing would make a future of another event loop
            self._run(asyncio.gather(*shipped))

    def flush(self) -> None:
        """Ship every partial batch and wait until all are acknowledged."""
        for (topic, partition), batch in list(self._batches.items()):
            if batch.record_count():
                self._ship(topic, partition, batch)
        self._batches.clear()
        self._wait()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._run(self._producer.stop())
            self._loop.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self._producer.stop())
        with contextlib.suppress(Exception):
            self._loop.close()
