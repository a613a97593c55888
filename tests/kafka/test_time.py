"""CONTRACT §1.3 and §3 through Kafka: what closes a window on a live worker.

* Idle advance: with no watermark at all, a quiet partition (or a dead issuer feed)
  still gets its verdicts, a few seconds of wall time after its last event.
* Watermarks: with idle advance out of the way (an hour), a watermark past the window
  close on every input partition gives the verdict at once; a watermark on only some
  partitions of a topic vouches for nothing and closes nothing.

Events of the idle-advance tests happen *now* (the idle advance moves progress by the
wall time elapsed since the last event, so events from the past would close at once
for another reason); those of the watermark tests at the factories' BASE.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.alerts import Alert
from models.config import DetectionConfig
from streams.kafka_clients import producer
from streams.settings import Settings
from streams.topics import create_topics
from tests.factories import BASE, encode, event, watermark
from tests.kafka.pipeline import read_alerts, wait, workers
from tests.kafka.waiting import wait_consuming, wait_for_alerts

# Generous for a loaded two-core machine; the expected latency is a few seconds.
IDLE_DEADLINE = 25.0
WATERMARK_DEADLINE = 15.0
SHORT = DetectionConfig(match_window=2, grace=1, idle_advance=2)

Item = tuple[str, int, dict[str, Any]]  # source, input partition, event


def now_seconds() -> float:
    """Now, as seconds after BASE: the time argument of tests.factories for "now"."""
    return (datetime.now(UTC) - BASE).total_seconds()


def produce(settings: Settings, items: list[Item]) -> None:
    client = producer(settings)
    try:
        for source, partition, event_ in items:
            topic = settings.source_topic(source)
            client.send(topic, value=encode(event_), partition=partition).get(timeout=30)
    finally:
        client.close()


def firing(kind: str, terminal: str) -> Callable[[list[Alert]], bool]:
    def done(alerts: list[Alert]) -> bool:
        return any(
            a.kind.value == kind and a.terminal_id == terminal and a.status.value == "firing"
            for a in alerts
        )

    return done


def unmatched_debit(t: float, **key: Any) -> list[Item]:
    """A sale sent at ``t`` s after BASE: debited, the terminal showed ``timeout``."""
    return [
        ("terminal", 0, event("request", t + 0.1, tx=t, **key)),
        ("issuer", 1, event("authorization", t + 0.2, tx=t, approved=True, **key)),
        ("issuer", 2, event("debit", t + 0.3, tx=t, **key)),
        ("terminal", 3, event("outcome", t + 1.0, tx=t, outcome="timeout", **key)),
    ]


def only(alerts: list[Alert], kind: str, terminal: str) -> Alert:
    found = [a for a in alerts if a.terminal_id == terminal]
    assert [(a.kind.value, a.status.value) for a in found] == [(kind, "firing")]
    return found[0]


def idle_advance_fires(
    settings: Settings, tmp_path: Path, items: list[Item], kind: str, terminal: str, sent: float
) -> None:
    """Produce ``items`` (no watermark) to a ready worker: ``kind`` fires by idle advance."""
    settings = dataclasses.replace(settings, detection=SHORT)
    create_topics(settings)
    with workers(settings, tmp_path) as running:
        wait_consuming(settings, running)
        produce(settings, items)
        alerts, waited = wait_for_alerts(settings, firing(kind, terminal), IDLE_DEADLINE)
        assert running[0].alive
    alert = only(alerts, kind, terminal)
    # Stream time moved past the window close by the wall time elapsed since the last
    # event (which happened "now"), so it never runs ahead of the wall clock.
    detected = datetime.fromisoformat(alert.detected_at)
    closes = BASE + timedelta(seconds=sent + SHORT.match_window + SHORT.grace)
    assert closes < detected <= datetime.now(UTC) + timedelta(seconds=2), (detected, closes)
    print(f"{kind} by idle advance after {waited:.1f} s")


def test_idle_advance_closes_windows_on_a_quiet_partition(
    settings: Settings, tmp_path: Path
) -> None:
    sent = math.floor(now_seconds())
    items = unmatched_debit(sent, terminal="T-IDLE", stan="000301")
    idle_advance_fires(settings, tmp_path, items, "unmatched_debit", "T-IDLE", sent)


def test_idle_advance_closes_windows_when_the_issuer_feed_is_dead(
    settings: Settings, tmp_path: Path
) -> None:
    sent = math.floor(now_seconds())
    key: dict[str, Any] = {"terminal": "T-DEAD-BANK", "stan": "000302", "tx": sent}
    items: list[Item] = [
        ("terminal", 1, event("request", sent + 0.1, **key)),
        ("terminal", 2, event("outcome", sent + 1.0, outcome="approved", **key)),
    ]
    idle_advance_fires(settings, tmp_path, items, "terminal_approved_no_debit", "T-DEAD-BANK", sent)


def watermarks(settings: Settings, t: float, source: str, partitions: range) -> list[Item]:
    return [(source, p, watermark(t)) for p in partitions]


def test_watermarks_on_every_partition_close_windows_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, detection=DetectionConfig(idle_advance=3600))
    close = settings.detection.match_window + settings.detection.grace  # sale sent at 0 s
    every = range(settings.input_partitions)
    create_topics(settings)
    with workers(settings, tmp_path) as running:
        wait_consuming(settings, running)
        produce(settings, unmatched_debit(0.0, terminal="T-WM-ALL", stan="000303"))
        wait(settings, running, timeout=120)
        assert read_alerts(settings) == []  # the events alone close nothing
        started = time.monotonic()
        produce(
            settings,
            watermarks(settings, close + 40, "terminal", every)
            + watermarks(settings, close + 40, "issuer", every),
        )
        alerts, _ = wait_for_alerts(
            settings, firing("unmatched_debit", "T-WM-ALL"), WATERMARK_DEADLINE
        )
        waited = time.monotonic() - started
    alert = only(alerts, "unmatched_debit", "T-WM-ALL")
    # Stream time is exactly the watermarks' time: both sources moved there.
    assert datetime.fromisoformat(alert.detected_at) == BASE + timedelta(seconds=close + 40)
    print(f"unmatched_debit {waited:.1f} s after the watermarks")


def test_a_watermark_on_some_partitions_of_a_topic_closes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, detection=DetectionConfig(idle_advance=3600))
    at = settings.detection.match_window + settings.detection.grace + 40
    every = range(settings.input_partitions)
    assert len(every) > 1
    create_topics(settings)
    with workers(settings, tmp_path) as running:
        wait_consuming(settings, running)
        produce(
            settings,
            unmatched_debit(0.0, terminal="T-WM-ONE", stan="000304")
            + watermarks(settings, at, "issuer", every)
            + watermarks(settings, at, "terminal", range(1)),
        )
        wait(settings, running, timeout=120)  # every message above has been processed
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert read_alerts(settings) == [], "a watermark on one partition closed a window"
        produce(settings, watermarks(settings, at, "terminal", every[1:]))
        alerts, waited = wait_for_alerts(
            settings, firing("unmatched_debit", "T-WM-ONE"), WATERMARK_DEADLINE
        )
    only(alerts, "unmatched_debit", "T-WM-ONE")
    print(f"unmatched_debit {waited:.1f} s after the last terminal partition's watermark")
