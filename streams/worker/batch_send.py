"""Send many records to one partition as whole producer batches.

``AIOKafkaProducer.send`` costs ~40 µs of Python per record (a future, the accumulator's
bookkeeping, a debug log record built for every call), and the ingest sends one record
per input event, the join one per changed transaction. Filling a ``BatchBuilder`` with
``append`` and handing it over once with ``send_batch`` is aiokafka's own bulk API: one
future per batch, the broker's base offset on delivery. Faust's ``producer.flush()``
(before every commit) waits for these batches like any other send: they sit in the same
accumulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, NamedTuple

# aiokafka's record builder (C) takes a list, nothing else.
Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes | None, Headers]
NO_HEADERS: Headers = []  # shared: the builder only reads it


class Delivery(NamedTuple):
    """The batches one call submitted, each with its number of records."""

    batches: list[tuple[asyncio.Future[Any], int]]

    async def offsets(self) -> list[int]:
        """The offset of every record, in order, once the broker has acknowledged them."""
        offsets: list[int] = []
        for future, count in self.batches:
            base = (await future).offset
            offsets.extend(range(base, base + count))
        return offsets

    async def next_offset(self) -> int | None:
        """One past the last record's offset, or None if nothing was sent."""
        if not self.batches:
            return None
        future, count = self.batches[-1]
        await asyncio.gather(*(f for f, _ in self.batches))
        return int((await future).offset) + count


async def send_records(
    producer: Any, topic: str, partition: int, records: Iterable[Record]
) -> Delivery:
    """Queue ``records`` for ``topic``/``partition`` in as few batches as fit.

    ``producer`` is an ``AIOKafkaProducer`` (Faust's: ``app.producer._ensure_producer()``).
    Returns once every batch is in the producer's accumulator, not when delivered.
    """
    batches: list[tuple[asyncio.Future[Any], int]] = []
    batch = producer.create_batch()
    count = 0
    for key, value, headers in records:
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if count == 0:
                raise ValueError(
                    f"a record of {len(value or b'')} bytes does not fit in a producer batch"
                )
            batches.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch = producer.create_batch()
            count = 0
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(
                    f"a record of {len(value or b'')} bytes does not fit in a producer batch"
                )
        count += 1
    if count:
        batches.append((await producer.send_batch(batch, topic, partition=partition), count))
    return Delivery(batches)
