"""Run stream workers as processes and tell when they have caught up.

Used by the demo (``debitwatch demo``), the integration tests and the benchmarks: each
worker is a real ``debitwatch worker`` process (so a test can ``kill -9`` it), configured
only through ``DEBITWATCH_*`` environment variables, as users run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from streams.kafka_clients import admin, consumer, topic_partitions
from streams.settings import Settings


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that makes ``Settings.from_env()`` give back ``settings``."""
    env = dict(os.environ if base is None else base)
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name == "deadlines":
            continue  # from a config file only (models/deadlines.py); tests use defaults
        if field.name == "detection":
            for inner in dataclasses.fields(value):
                env[f"DEBITWATCH_{inner.name.upper()}"] = str(getattr(value, inner.name))
        elif value is not None:
            env[f"DEBITWATCH_{field.name.upper()}"] = str(value)
    env.pop("DEBITWATCH_CONFIG", None)
    return env


class WorkerProcess:
    """One ``debitwatch worker`` subprocess with its own web port, state dir and log."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        web_port: int,
        log_dir: Path,
        loglevel: str = "warning",
    ) -> None:
        self.name = name
        self.loglevel = loglevel
        self.settings = dataclasses.replace(
            settings, web_port=web_port, data_dir=settings.data_dir / name
        )
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The worker's command line (a benchmark may run it under a profiler)."""
        return [sys.executable, "-m", "streams.cli", "worker", "--loglevel", self.loglevel]

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            env=settings_env(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches the demo, not the worker
        )
        return self

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM (Faust's clean shutdown: commit, flush), SIGKILL after ``timeout``.

        ``sig=SIGINT`` for a worker run under a profiler, which writes its report then.
        """
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()
        return process.returncode

    def kill(self) -> None:
        """``kill -9``: no shutdown, no commit, no flush."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def metrics(self) -> list[Sample]:
        """Every sample on the worker's ``/metrics``; OSError while its web server is not up."""
        url = f"http://127.0.0.1:{self.settings.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_strays(app_id: str, timeout: float = 30.0) -> int:
    """SIGTERM (then SIGKILL) every worker process of ``app_id`` still running: one an
    interrupt caught between its fork and our bookkeeping. Linux /proc; returns how many."""
    marker = f"DEBITWATCH_APP_ID={app_id}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if b"streams.cli" in (entry / "cmdline").read_bytes() and marker in (
                entry / "environ"
            ).read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in found:
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(found)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent's wait is missing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def lag_by_topic(settings: Settings) -> dict[str, int]:
    """Messages of each input topic and of the re-keyed topic that the workers have not
    committed yet."""
    topics = [settings.terminal_topic, settings.issuer_topic, settings.repartition_topic]
    reader = consumer(settings)
    try:
        partitions = [tp for topic in topics for tp in topic_partitions(reader, topic)]
        ends: dict[Any, int] = reader.end_offsets(partitions)
    finally:
        reader.close()
    with admin(settings) as client:
        try:
            committed = client.list_group_offsets(settings.app_id).get(settings.app_id, {})
        except KafkaError as error:
            # A new broker has no group coordinator until the first group exists (a
            # retriable error): nothing is committed yet.
            if not error.retriable:
                raise
            committed = {}
    lag = dict.fromkeys(topics, 0)
    for tp, end in ends.items():
        done = committed.get(tp)
        lag[tp.topic] += max(0, end - (done.offset if done is not None and done.offset >= 0 else 0))
    return lag


def consumer_lag(settings: Settings) -> int:
    """Messages of the input and re-keyed topics the workers have not committed yet."""
    return sum(lag_by_topic(settings).values())


def _lag_or_none(settings: Settings) -> int | None:
    """:func:`consumer_lag`, or None while the broker cannot say yet (a new broker has no
    group coordinator until the first group exists: a retriable error)."""
    try:
        return consumer_lag(settings)
    except KafkaError as error:
        if not error.retriable:
            raise
        return None


def wait_caught_up(
    settings: Settings,
    *,
    timeout: float,
    workers: list[WorkerProcess] | None = None,
    poll: float = 1.0,
) -> float:
    """Wait until every input and re-keyed message is committed; seconds waited.

    Faust commits after the producer has flushed what those messages caused (alerts,
    state), so a lag of 0 means every alert is in the alerts topic. Raises
    TimeoutError, or RuntimeError if a worker died meanwhile (with its log).
    """
    started = time.monotonic()
    zeros = 0
    while True:
        for worker in workers or []:
            if not worker.alive:
                raise RuntimeError(f"worker {worker.name} exited:\n{worker.log_tail()}")
        # Twice in a row: the ingest may commit an input offset between our reads of the
        # re-keyed topic's end and of the group's offsets.
        zeros = zeros + 1 if _lag_or_none(settings) == 0 else 0
        if zeros >= 2:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"workers still behind by {_lag_or_none(settings)} messages after {timeout} s"
            )
        time.sleep(poll)
