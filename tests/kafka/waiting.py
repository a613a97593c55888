"""Waiting on live workers with a deadline: for their consumer group, for alerts.

Tests about *when* something happens (CONTRACT §3) poll with a deadline instead of
sleeping a fixed time, so they are as fast as the machine allows and still fail when
the behaviour is wrong.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from kafka.errors import KafkaError

from models.alerts import Alert
from streams.cluster import WorkerProcess
from streams.kafka_clients import admin
from streams.settings import Settings
from tests.kafka.pipeline import read_alerts


def wait_consuming(settings: Settings, running: list[WorkerProcess], timeout: float = 120) -> float:
    """Wait until every worker is a member of the app's consumer group and the group is
    ``Stable`` (partitions assigned); seconds waited.

    On a fresh broker the group coordinator (``__consumer_offsets``) does not exist
    until the first consumer asks for it: errors meanwhile mean "not yet".
    """
    started = time.monotonic()
    while True:
        for worker in running:
            assert worker.alive, f"worker {worker.name} exited:\n{worker.log_tail()}"
        try:
            with admin(settings) as client, _quiet("kafka.admin", "kafka.cluster"):
                group = client.describe_groups([settings.app_id]).get(settings.app_id, {})
        except KafkaError:
            group = {}
        if group.get("group_state") == "Stable" and len(group.get("members", [])) >= len(running):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"consumer group {settings.app_id} not stable after {timeout} s")
        time.sleep(0.5)


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence kafka-python's warnings while polling: it cannot decode Faust's group
    metadata (a warning per member per call) and logs the "not yet" errors we expect."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def wait_for_alerts(
    settings: Settings, done: Callable[[list[Alert]], bool], timeout: float
) -> tuple[list[Alert], float]:
    """Read the alerts topic until ``done(alerts)``; the alerts and the seconds it took.

    Fails the test (with what was published) if ``timeout`` passes first.
    """
    started = time.monotonic()
    while True:
        alerts = read_alerts(settings)
        waited = time.monotonic() - started
        if done(alerts):
            return alerts, waited
        assert waited < timeout, (
            f"after {waited:.1f} s: {[(a.kind.value, a.terminal_id, a.status.value) for a in alerts]}"
        )
        time.sleep(0.5)
