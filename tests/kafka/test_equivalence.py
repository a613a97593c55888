"""CONTRACT §4 through Kafka: the workers give exactly the replay's firing alerts.

Each test produces a capture (with its final far-future watermarks) to fresh topics,
runs real ``debitwatch worker`` processes on the session's broker, waits until they
have committed every message, reads ``debitwatch.alerts`` back and compares its firing
set with ``debitwatch replay`` of the same capture.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from models.final_states import firing_set
from streams.cluster import consumer_lag
from streams.settings import Settings
from streams.topics import create_topics
from tests.factories import capture, far_future_watermark
from tests.kafka.pipeline import (
    duplicates,
    prepare,
    read_alerts,
    replay_alerts,
    simulate,
    start_worker,
    wait,
    workers,
)
from tests.models.test_contract_kinds import CASES


@pytest.fixture(scope="module")
def capture_100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100,000 simulated transactions, default fault profile (disorder included)."""
    return simulate(tmp_path_factory.mktemp("capture-100k"), 100000, seed=11)


@pytest.fixture(scope="module")
def produced_100k(kafka_bootstrap: str, capture_100k: Path) -> Settings:
    """The 100k capture on input topics shared by this module's tests (producing it
    takes a minute); each test runs its own app (group, re-keyed and alerts topics)."""
    tag = uuid.uuid4().hex[:10]
    shared = Settings(
        broker=f"kafka://{kafka_bootstrap}",
        app_id=f"dw-shared-{tag}",
        terminal_topic=f"terminal-100k-{tag}",
        issuer_topic=f"issuer-100k-{tag}",
    )
    prepare(shared, capture_100k)
    return shared


def on_shared_inputs(settings: Settings, shared: Settings) -> Settings:
    own = dataclasses.replace(
        settings, terminal_topic=shared.terminal_topic, issuer_topic=shared.issuer_topic
    )
    create_topics(own)
    return own


def scenario_capture(path: Path) -> dict[str, set[str]]:
    """Every CONTRACT §2 case on its own terminal, in one capture; terminal -> kinds."""
    items: list[tuple[str, dict[str, object] | bytes]] = []
    expected: dict[str, set[str]] = {}
    for number, case in enumerate(case for case in CASES if case.config is None):
        terminal = f"T-{number:04d}"
        for source, event in case.events:
            items.append((source, {**event, "terminal_id": terminal}))
        expected[terminal] = case.firing
    items += [("terminal", far_future_watermark()), ("issuer", far_future_watermark())]
    path.write_bytes(capture(items))
    return expected


def test_contract_scenarios_fire_the_same_through_kafka(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "scenarios.jsonl"
    expected = scenario_capture(path)
    prepare(settings, path)
    with workers(settings, tmp_path) as running:
        wait(settings, running, timeout=120)
    alerts = read_alerts(settings)
    by_terminal: dict[str, set[str]] = {terminal: set() for terminal in expected}
    for _alert_id, kind, terminal, _stan, _sent in firing_set(alerts):
        assert terminal is not None
        by_terminal[terminal].add(kind)
    assert by_terminal == expected
    assert firing_set(alerts) == firing_set(replay_alerts(path, tmp_path, settings))
    assert duplicates(alerts) == []


@pytest.mark.slow
def test_100k_capture_one_worker_four_partitions(
    settings: Settings, tmp_path: Path, capture_100k: Path, produced_100k: Settings
) -> None:
    assert settings.partitions == 4
    settings = on_shared_inputs(settings, produced_100k)
    with workers(settings, tmp_path) as running:
        wait(settings, running)
    alerts = read_alerts(settings)
    expected = firing_set(replay_alerts(capture_100k, tmp_path, settings))
    assert len(expected) > 2000
    assert firing_set(alerts) == expected
    assert duplicates(alerts) == []


@pytest.mark.slow
def test_100k_capture_second_worker_joins_mid_stream(
    settings: Settings, tmp_path: Path, capture_100k: Path, produced_100k: Settings
) -> None:
    settings = on_shared_inputs(settings, produced_100k)
    total = consumer_lag(settings)
    with workers(settings, tmp_path) as running:
        # Let the first worker get a good way in, then add a second: a rebalance moves
        # half of the partitions, with their state, to the newcomer.
        deadline = time.monotonic() + 600
        while consumer_lag(settings) > total * 0.6 and time.monotonic() < deadline:
            time.sleep(1)
        assert consumer_lag(settings) > 0, "the first worker finished before the second joined"
        running.append(start_worker(settings, tmp_path))
        wait(settings, running)
        assert all(worker.alive for worker in running)
    alerts = read_alerts(settings)
    assert firing_set(alerts) == firing_set(replay_alerts(capture_100k, tmp_path, settings))
    assert duplicates(alerts) == []
