"""A worker killed with SIGKILL mid-stream and restarted: same firing set, no duplicate
alert state change seen by a consumer of ``debitwatch.alerts`` (docs/streaming.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from models.final_states import firing_set
from streams.cluster import consumer_lag
from streams.settings import Settings
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


@pytest.fixture(scope="module")
def capture_10k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("capture-10k"), 10000, seed=5)


def test_kill_9_mid_stream_then_restart(
    settings: Settings, tmp_path: Path, capture_10k: Path
) -> None:
    # The group waits this long for the killed worker before its restart takes over.
    settings = dataclasses.replace(settings, session_timeout=10.0)
    prepare(settings, capture_10k)
    total = consumer_lag(settings)
    worker = start_worker(settings, tmp_path)
    try:
        kill_halfway(settings, worker, total)
        before = len(read_alerts(settings))
        worker.start()  # same state directory: a restart, not a new worker
        wait(settings, [worker])
    finally:
        worker.stop()
    alerts = read_alerts(settings)
    assert before > 0
    assert firing_set(alerts) == firing_set(replay_alerts(capture_10k, tmp_path, settings))
    assert duplicates(alerts) == []
    # The capture's final far-future watermark passes every regulatory deadline: the INR
    # ghosts are re-published escalated, once each, across the crash too.
    escalated = [a.alert_id for a in alerts if a.deadline_passed]
    assert escalated and len(escalated) == len(set(escalated))
