"""The retry table's writer (streams/webhooks/store.py) without Kafka: what it must not send.

What it does send, and what happens when Kafka refuses it, is tested against a real
broker in tests/kafka/test_webhooks.py.
"""

from __future__ import annotations

import asyncio

from streams.webhooks.store import ChangelogWriter


def test_writes_for_a_partition_no_longer_owned_are_dropped() -> None:
    """After a rebalance the partition's new owner writes its queues: a late record from
    the old owner (an attempt that ended after the hand-over) would overwrite newer ones.
    The writer drops it before it reaches the producer (``app`` and ``table`` here are
    never touched: a send would fail on them)."""
    failures: list[BaseException] = []
    owned = {0}
    writer = ChangelogWriter(
        app=None, table=None, on_failure=failures.append, local=lambda: True,
        owns=lambda partition: partition in owned,
    )  # fmt: skip

    async def late_write() -> None:
        await writer.write(1, [(b"q\x1fcases\x1fud-1", None)])
        await writer.acked(1)

    asyncio.run(late_write())
    assert failures == []
