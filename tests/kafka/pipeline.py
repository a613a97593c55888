"""Run captures through real workers on the session's broker and read the alerts back."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from models.alerts import Alert
from models.final_states import ALERT_DECODER
from streams.cluster import WorkerProcess, consumer_lag, wait_caught_up
from streams.kafka_clients import read_topic
from streams.produce import produce_capture
from streams.replay import replay
from streams.settings import Settings
from streams.topics import create_topics
from tests.kafka.conftest import free_port

_names = itertools.count(1)


@contextmanager
def workers(settings: Settings, log_dir: Path, count: int = 1) -> Iterator[list[WorkerProcess]]:
    """``count`` running workers, stopped (SIGTERM) at the end; their logs on failure."""
    started = [start_worker(settings, log_dir) for _ in range(count)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def start_worker(settings: Settings, log_dir: Path) -> WorkerProcess:
    name = f"worker-{next(_names)}"
    return WorkerProcess(settings, name=name, web_port=free_port(), log_dir=log_dir).start()


def simulate(folder: Path, transactions: int, seed: int) -> Path:
    """A default-profile capture (disorder included) and its truth, written by the CLI."""
    path = folder / "capture.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--transactions", str(transactions),
         "--profile", "default", "--seed", str(seed), "-o", str(path),
         "--truth", str(folder / "truth.jsonl")],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def prepare(settings: Settings, *captures: Path) -> None:
    create_topics(settings)
    for capture in captures:
        produce_capture(settings, [capture])


def read_alerts(settings: Settings) -> list[Alert]:
    return [
        ALERT_DECODER.decode(record.value)
        for record in read_topic(settings, settings.alerts_topic, until_idle=1.0)
    ]


def replay_alerts(capture: Path, out_dir: Path, settings: Settings) -> list[Alert]:
    out = out_dir / f"replay-{capture.stem}.jsonl"
    with out.open("wb") as handle:
        replay([capture], handle, config=settings.detection)
    return [ALERT_DECODER.decode(line) for line in out.read_bytes().splitlines() if line]


def duplicates(alerts: list[Alert]) -> list[tuple[str, str]]:
    """The records a consumer would see twice: an alert state equal to the previous
    record of the same alert (``firing`` then ``firing`` again).

    All records of one alert are in one partition, so the topic orders them. A re-fire
    after a resolution (firing, resolved, firing) is a new state change, not a repeat;
    so is the escalation when the alert's regulatory deadline passes (firing, then
    firing with ``deadline_passed``: models/deadlines.py).
    """
    last: dict[str, tuple[str, bool]] = {}
    repeated: list[tuple[str, str]] = []
    for alert in alerts:
        state = (str(alert.status), alert.deadline_passed)
        if last.get(alert.alert_id) == state:
            repeated.append((alert.alert_id, state[0]))
        last[alert.alert_id] = state
    return repeated


def progress(worker: WorkerProcess) -> tuple[float, float]:
    """(re-keyed messages the join has processed, alert records it has published and seen
    acknowledged) so far; zeros before the worker serves its metrics."""
    try:
        samples = worker.metrics()
    except OSError:
        return 0.0, 0.0
    joined = sum(s.value for s in samples if s.name == "debitwatch_join_messages_total")
    alerted = sum(s.value for s in samples if s.name == "debitwatch_alerts_total")
    return joined, alerted


def kill_halfway(settings: Settings, worker: WorkerProcess, total: int) -> None:
    """SIGKILL ``worker`` once its join has processed half of ``total`` (the input's lag
    before it started; the re-keyed topic holds at least as many messages) and some of
    its alerts are in the alerts topic (a crash after published alerts is the case to
    test: their de-duplication on restart).

    Watched on the worker's own counters, polled every 50 ms: the group's committed
    offsets move only once per commit interval, and a worker that takes a 10k capture in
    a few seconds could finish between two looks at them. The worker must not have
    finished when it dies.
    """
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        joined, alerted = progress(worker)
        if joined >= total * 0.5 and alerted > 0:
            break
        assert worker.alive, worker.log_tail()
        time.sleep(0.05)
    worker.kill()
    assert consumer_lag(settings) > 0, "the worker finished before it was killed"


def wait(settings: Settings, running: list[WorkerProcess], timeout: float = 900) -> float:
    return wait_caught_up(settings, timeout=timeout, workers=running)


Step = Callable[[], None]
