"""Incident alerts through Kafka survive a crash: a worker killed with SIGKILL halfway
and restarted publishes exactly the ``terminal_incident`` alert states that an
uninterrupted worker makes of the same partition streams (docs/incidents.md).

The reference is the pure :class:`~streams.worker.partition_state.PartitionState` fed
the re-keyed topic as the worker read it (read back from Kafka in offset order): the
incident decisions are a function of that sequence, so any state lost or doubled in the
crash would show as a difference.
"""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from models.alerts import Alert, Kind
from models.incident_scoring import load_scorer
from streams.cluster import consumer_lag
from streams.kafka_clients import read_topic
from streams.settings import Settings
from streams.worker.partition_state import Incoming, PartitionState
from streams.worker.wire import ORIGIN_HEADER
from tests.kafka.pipeline import (
    duplicates,
    kill_halfway,
    prepare,
    read_alerts,
    start_worker,
    wait,
)


@pytest.fixture(scope="module")
def incident_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~17 minutes of a 100-terminal fleet with a dozen injected incidents."""
    folder = tmp_path_factory.mktemp("incidents")
    path = folder / "capture.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--transactions", "10000",
         "--profile", "normal", "--rate", "10", "--terminals", "100", "--merchants", "20",
         "--seed", "11", "--set", "incidents_per_day=1000", "-o", str(path),
         "--truth", str(folder / "truth.jsonl")],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def incident_records(alerts: list[Alert]) -> dict[str, list[str]]:
    """Per incident alert, its statuses in publication order."""
    by_alert: dict[str, list[str]] = collections.defaultdict(list)
    for alert in alerts:
        if alert.kind is Kind.TERMINAL_INCIDENT:
            by_alert[alert.alert_id].append(str(alert.status))
    return dict(by_alert)


def reference(settings: Settings) -> list[Alert]:
    """An uninterrupted run over the re-keyed partitions exactly as Kafka holds them."""
    scorer = load_scorer(settings.incident_model)
    by_partition: dict[int, list[Incoming]] = collections.defaultdict(list)
    for record in read_topic(settings, settings.repartition_topic, until_idle=1.0):
        origin = dict(record.headers or []).get(ORIGIN_HEADER)
        by_partition[record.partition].append(Incoming(record.value, origin))
    alerts: list[Alert] = []
    for partition, messages in sorted(by_partition.items()):
        state = PartitionState(partition, settings.detection, incidents=scorer)
        for start in range(0, len(messages), 5000):
            state.feed(messages[start : start + 5000], wall_us=0)
        alerts += state.take_alerts()
    return alerts


def test_incident_alerts_survive_kill_9(
    settings: Settings, tmp_path: Path, incident_capture: Path
) -> None:
    settings = dataclasses.replace(settings, session_timeout=10.0)
    prepare(settings, incident_capture)
    total = consumer_lag(settings)
    worker = start_worker(settings, tmp_path)
    try:
        kill_halfway(settings, worker, total)
        worker.start()
        wait(settings, [worker])
    finally:
        worker.stop()
    published = incident_records(read_alerts(settings))
    expected = incident_records(reference(settings))
    assert len(expected) >= 5, "the capture should raise several incidents"
    assert published == expected
    assert duplicates(read_alerts(settings)) == []
