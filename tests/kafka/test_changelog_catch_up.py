"""The bulk changelog restore (streams/worker/changelog_catch_up.py) on the real broker.

First on a store alone: what it writes equals the changelog's last value per key, it
starts from the persisted offset, and it stops when its time budget is spent. Then a
worker killed mid-stream is replaced by one with an *empty* data directory (a pod with
no volume): it restores from the changelog alone, through the catch-up, and the alerts
still equal the replay's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP
from kafka.admin import NewTopic

from models.final_states import firing_set
from streams.cluster import WorkerProcess, consumer_lag
from streams.kafka_clients import admin, producer
from streams.settings import Settings
from streams.worker.changelog_catch_up import STORE_URL, catch_up
from tests.kafka.conftest import free_port
from tests.kafka.pipeline import (
    duplicates,
    kill_halfway,
    prepare,
    read_alerts,
    replay_alerts,
    simulate,
    start_worker,
    wait,
)

PARTITIONS = 2


def changelog_store(settings: Settings, folder: Path) -> tuple[Any, str]:
    """A Faust app's table store as the worker builds it (not started), and the name of
    its changelog topic."""
    app = faust.App(settings.app_id, broker=settings.broker, datadir=str(folder), store=STORE_URL)
    table = app.Table("txns", partitions=PARTITIONS, key_type=bytes, value_type=bytes)
    return table.data, table.changelog_topic.get_topic_name()


def produce(
    settings: Settings, topic: str, records: Sequence[tuple[int, bytes, bytes | None]]
) -> None:
    with producer(settings) as client:
        for partition, key, value in records:
            client.send(topic, key=key, value=value, partition=partition)
        client.flush()


def contents(store: Any, partition: int) -> dict[bytes, bytes]:
    db = store._db_for_partition(partition)
    return {k: v for k, v in db.items() if k != store.offset_key}


def test_catch_up_applies_the_changelog_from_the_persisted_offset(
    settings: Settings, tmp_path: Path
) -> None:
    store, topic = changelog_store(settings, tmp_path)
    with admin(settings) as client:
        client.create_topics([NewTopic(topic, PARTITIONS, 1)])
    tps = [TP(topic, p) for p in range(PARTITIONS)]
    bootstrap = settings.bootstrap
    # Partition 0: overwrites and a tombstone; partition 1: plain puts.
    first: list[tuple[int, bytes, bytes | None]] = [
        (0, f"k{i % 50}".encode(), f"v{i}".encode()) for i in range(300)
    ]
    first += [(0, b"k7", None), (1, b"only", b"one"), (1, b"two", b"2")]
    produce(settings, topic, first)

    result = asyncio.run(catch_up(store, tps, bootstrap, budget=60))

    assert result.complete and result.records == len(first)
    expected = {f"k{i % 50}".encode(): f"v{i}".encode() for i in range(250, 300)}
    del expected[b"k7"]
    assert contents(store, 0) == expected
    assert contents(store, 1) == {b"only": b"one", b"two": b"2"}
    assert store.persisted_offset(tps[0]) == 300
    assert store.persisted_offset(tps[1]) == 1

    # More records: only those are read, from the persisted offsets on.
    produce(settings, topic, [(0, b"k7", b"back"), (1, b"two", None)])
    again = asyncio.run(catch_up(store, tps, bootstrap, budget=60))
    assert again.complete and again.records == 2
    assert contents(store, 0) == {**expected, b"k7": b"back"}
    assert contents(store, 1) == {b"only": b"one"}
    assert again.reached == {0: (302, 302), 1: (3, 3)}

    # A spent budget reads nothing (the store's caller logs it, Faust's recovery reads
    # the rest), and the persisted offsets stay where they were.
    produce(settings, topic, [(1, b"late", b"x")])
    with pytest.raises(TimeoutError):
        asyncio.run(catch_up(store, tps, bootstrap, budget=0))
    assert b"late" not in contents(store, 1)
    assert store.persisted_offset(tps[1]) == 2


@pytest.fixture(scope="module")
def capture_5k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("capture-5k"), 5000, seed=9)


CAUGHT_UP = re.compile(r"changelog catch-up of \[[0-9, ]+\]: (\d+) records")


def test_a_worker_with_an_empty_data_dir_restores_from_the_changelog(
    settings: Settings, tmp_path: Path, capture_5k: Path
) -> None:
    settings = dataclasses.replace(settings, session_timeout=10.0)
    prepare(settings, capture_5k)
    total = consumer_lag(settings)
    first = start_worker(settings, tmp_path)
    second = None
    try:
        kill_halfway(settings, first, total)
        before = len(read_alerts(settings))
        # A new member with its own, empty, data directory; at INFO, where the catch-up
        # reports what it read.
        second = WorkerProcess(
            settings, name="fresh", web_port=free_port(), log_dir=tmp_path, loglevel="info"
        )
        second.start()
        wait(settings, [second])
        log = second.log_path.read_text()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    restored = [int(count) for count in CAUGHT_UP.findall(log)]
    assert before > 0
    assert restored and sum(restored) > 0, log[-3000:]
    alerts = read_alerts(settings)
    assert firing_set(alerts) == firing_set(replay_alerts(capture_5k, tmp_path, settings))
    assert duplicates(alerts) == []
