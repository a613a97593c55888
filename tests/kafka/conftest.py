"""One real Apache Kafka broker per test session, and unique names per test.

The broker is the project's own (``streams.kafka_local``: the official jars, KRaft, on
loopback). ``DEBITWATCH_TEST_BROKER=host:port`` points the tests at a running one instead
(handy when iterating: ``debitwatch kafka start`` once, then run tests many times).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import kafka_local
from streams.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a live broker for the whole session."""
    given = os.environ.get("DEBITWATCH_TEST_BROKER")
    if given:
        yield given
        return
    data_dir = tmp_path_factory.mktemp("kafka")
    bootstrap = kafka_local.start(port=free_port(), data_dir=data_dir, controller_port=free_port())
    try:
        yield bootstrap
    finally:
        kafka_local.stop(data_dir)


def unique_settings(kafka_bootstrap: str, folder: Path, name: str = "") -> Settings:
    """Settings with an app id and topic names no other test or run uses; ``name`` goes
    into them, for reading a broker's topic list."""
    tag = f"{name}-{uuid.uuid4().hex[:10]}" if name else uuid.uuid4().hex[:10]
    return Settings(
        broker=f"kafka://{kafka_bootstrap}",
        app_id=f"dw-{tag}",
        terminal_topic=f"terminal-{tag}",
        issuer_topic=f"issuer-{tag}",
        alerts_topic=f"alerts-{tag}",
        dlq_topic=f"dlq-{tag}",
        data_dir=folder / "state",
    )


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings with topic names and an app id no other test uses."""
    return unique_settings(kafka_bootstrap, tmp_path)
