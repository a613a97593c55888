"""What the stream benchmarks share: a private broker, fresh names, worker processes, CPU.

Used by ``bench/stream_throughput.py``, ``bench/alert_latency.py`` and
``bench/recovery.py``. Each benchmark starts its own broker (``streams.kafka_local``) on
free ports in a temporary directory and stops it at the end, gives every run its own
app id and topic names, and runs each worker as a real ``debitwatch worker`` process.

The machine is shared (two cores, other engineers' Kafka tests): :class:`CpuMeter`
tells how much CPU the benchmark's own processes used during a measurement and how much
went to everything else, so a result taken under a neighbour's load says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka.errors import KafkaError  # noqa: E402

from bench.replay_throughput import capture_for, machine  # noqa: E402
from streams import kafka_local  # noqa: E402
from streams.cluster import WorkerProcess, consumer_lag  # noqa: E402
from streams.settings import Settings  # noqa: E402

# streams/kafka_local.py runs the broker with the C1 JIT only, to start fast in tests,
# and says to drop that flag to benchmark: the benchmarks do.
BROKER_JVM_OPTIONS = tuple(
    option for option in kafka_local.JVM_OPTIONS if not option.startswith("-XX:TieredStopAtLevel")
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_header(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The capture ``args`` name (simulated on first use) and the fields every result
    file starts with: date, machine, code, capture."""
    args.data.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    capture = capture_for(args.transactions, args.seed, args.data)
    return capture, {
        "date": now_iso(),
        "machine": machine(),
        "code": code_state(),
        "capture": {"path": capture.name, "transactions": args.transactions, "seed": args.seed},
    }


def code_state() -> dict[str, Any]:
    """Which code was measured: the commit, and a digest of the worker's and the core's
    files as they are (others edit them without committing)."""

    def git(*arguments: str) -> str:
        run = subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return run.stdout

    head = git("rev-parse", "--short", "HEAD").strip()
    changed = git("status", "--porcelain", "--", "models", "streams").split("\n")
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("streams/worker/*.py"), *ROOT.glob("models/*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {
        "git_head": head,
        "uncommitted_in_models_streams": len([line for line in changed if line.strip()]),
        "sha256_streams_worker_and_models": digest.hexdigest()[:16],
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


@dataclasses.dataclass
class Broker:
    bootstrap: str
    data_dir: Path

    @property
    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None


@contextlib.contextmanager
def local_broker(scratch: Path) -> Iterator[Broker]:
    """A fresh single-node broker on free ports under ``scratch``; stopped at the end."""
    data_dir = scratch / "kafka"
    kafka_local.JVM_OPTIONS = BROKER_JVM_OPTIONS  # type: ignore[assignment]  # read per start
    started = time.monotonic()
    bootstrap = kafka_local.start(port=free_port(), data_dir=data_dir, controller_port=free_port())
    print(f"broker {bootstrap} up in {time.monotonic() - started:.1f} s ({data_dir})")
    try:
        yield Broker(bootstrap, data_dir)
    finally:
        kafka_local.stop(data_dir)


@contextlib.contextmanager
def scratch_dir(keep: bool) -> Iterator[Path]:
    """A temporary directory (broker data, worker state, logs), removed unless ``keep``."""
    if keep:
        path = Path(tempfile.mkdtemp(prefix="dw-bench-"))
        print(f"scratch directory (kept): {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dw-bench-") as name:
        yield Path(name)


def fresh_settings(broker: Broker, state_dir: Path, label: str, **changes: Any) -> Settings:
    """Settings with an app id and topic names no other run uses."""
    tag = f"{label}-{uuid.uuid4().hex[:8]}"
    return Settings(
        broker=f"kafka://{broker.bootstrap}",
        app_id=f"dw-{tag}",
        terminal_topic=f"terminal-{tag}",
        issuer_topic=f"issuer-{tag}",
        alerts_topic=f"alerts-{tag}",
        dlq_topic=f"dlq-{tag}",
        data_dir=state_dir / tag,
        **changes,
    )


class BenchWorker(WorkerProcess):
    """A :class:`WorkerProcess` on a free port whose interpreter command can be chosen:
    the profile runs the worker under ``pyinstrument`` (``prefix``). Also keeps the start
    time and the process id."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        log_dir: Path,
        loglevel: str = "warning",
        prefix: Sequence[str] = (),
    ) -> None:
        super().__init__(
            settings, name=name, web_port=free_port(), log_dir=log_dir, loglevel=loglevel
        )
        self.prefix = list(prefix) or [sys.executable]
        self.started_wall = 0.0
        self.started = 0.0
        self.log_offset = 0

    def command(self) -> list[str]:
        return [*self.prefix, "-m", "streams.cli", "worker", "--loglevel", self.loglevel]

    def start(self) -> BenchWorker:
        # A restart appends to the same log: remember where this run's lines begin.
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started_wall = time.time()
        self.started = time.monotonic()
        super().start()
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def interrupt(self, timeout: float = 120.0) -> int | None:
        """SIGINT (what a profiler needs to write its report), SIGKILL after ``timeout``."""
        return self.stop(timeout, sig=signal.SIGINT)

    def log_since_start(self) -> str:
        """What this run of the worker logged (the log file may hold earlier runs)."""
        with self.log_path.open("rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode(errors="replace")

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> tuple[float, str]:
        """Poll the log until a line matches; (seconds since start, the line).

        Raises TimeoutError, or RuntimeError if the worker exits first.
        """
        deadline = time.monotonic() + timeout
        offset = self.log_offset
        pending = ""
        while True:
            seen = time.monotonic()
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            pending += chunk.decode(errors="replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                if pattern.search(line):
                    return seen - self.started, line
            if not self.alive:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}")
            if seen > deadline:
                raise TimeoutError(f"no line matching {pattern.pattern!r} in {timeout} s")
            time.sleep(0.05)


def group_coordinator_ready(settings: Settings, timeout: float = 60.0) -> None:
    """Ask for the group's offsets until the broker answers.

    On a fresh broker the first FindCoordinator makes Kafka create ``__consumer_offsets``
    and answers CoordinatorNotAvailable meanwhile; ``streams.cluster.consumer_lag`` does
    not retry that, so ``wait_caught_up`` would fail on its first poll.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            consumer_lag(settings)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Watched(Protocol):
    """What ``caught_up`` watches: one worker process, or several as one."""

    name: str

    @property
    def alive(self) -> bool: ...

    def log_tail(self, lines: int = 40) -> str: ...


def caught_up(settings: Settings, worker: Watched, timeout: float, stall: float = 180.0) -> float:
    """Seconds until every input and re-keyed message is committed (two zero-lag polls in
    a row, every 0.5 s, as ``streams.cluster.wait_caught_up``).

    Raises RuntimeError if the worker exits, TimeoutError after ``timeout`` seconds or
    when the lag has not gone down for ``stall`` seconds (a worker stuck on an error it
    only logs). A broker error during a poll is retried.
    """
    started = time.monotonic()
    best: int | None = None
    best_at = started
    zeros = 0
    while True:
        if not worker.alive:
            raise RuntimeError(f"worker {worker.name} exited:\n{worker.log_tail()}")
        try:
            lag: int | None = consumer_lag(settings)
        except KafkaError as error:
            print(f"  (lag poll failed, retrying: {error})")
            lag = None
        now = time.monotonic()
        if lag is not None:
            zeros = zeros + 1 if lag == 0 else 0
            if zeros >= 2:
                return now - started
            if best is None or lag < best:
                best, best_at = lag, now
        if now - started > timeout:
            raise TimeoutError(f"still behind by {lag} messages after {timeout:.0f} s")
        if now - best_at > stall:
            raise TimeoutError(
                f"no progress for {stall:.0f} s: still behind by {lag} messages "
                f"{now - started:.0f} s after start"
            )
        time.sleep(0.5)


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes (psutil is not installed)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = row.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its reaped children (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    return (sum(values[:8]) - idle - steal) / CLOCK_TICKS


class CpuMeter:
    """CPU used during a measurement: by named processes of ours, and by everything else.

    ``others_cores`` (CPU seconds of everything that is not ours per wall second) is
    the neighbours' load; 1.0 means a whole core of the two was someone else's. Also
    samples the 1-minute load average every few seconds, and each process's cores used
    every second (``timeline``: a worker that idles while it is behind shows there,
    docs/PERFORMANCE.md "Idle while behind").
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start_cpu = {name: _process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._start_self = _self_cpu_seconds()
        self._start_busy = machine_busy_seconds()
        self._started = time.monotonic()
        self._loads: list[float] = [os.getloadavg()[0]]
        self._timeline: dict[str, list[float]] = {name: [] for name in self.pids}
        self._last_cpu = dict(self._start_cpu)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.result: dict[str, Any] = {}

    def add(self, name: str, pid: int) -> None:
        """Count a process started after the meter (from zero CPU)."""
        # Its sampling state first: the sampling thread reads ``pids``.
        self._start_cpu[name] = 0.0
        self._last_cpu[name] = 0.0
        # Seconds before it started: nothing used.
        self._timeline[name] = [0.0] * len(next(iter(self._timeline.values()), []))
        self.pids[name] = pid

    def _sample(self) -> None:
        ticks = 0
        while not self._stop.wait(1.0):
            ticks += 1
            for name, pid in list(self.pids.items()):
                cpu = _process_cpu_seconds(pid)
                used = max(0.0, cpu - self._last_cpu[name]) if cpu else 0.0
                self._last_cpu[name] = cpu or self._last_cpu[name]
                self._timeline[name].append(round(used, 2))
            if ticks % 5 == 0:
                self._loads.append(os.getloadavg()[0])

    def stop(self) -> dict[str, Any]:
        """Stop and return the figures (call before the measured processes exit)."""
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self._started
        ours = {
            name: _process_cpu_seconds(pid) - self._start_cpu[name]
            for name, pid in self.pids.items()
        }
        ours["bench (this process)"] = _self_cpu_seconds() - self._start_self
        busy = machine_busy_seconds() - self._start_busy
        others = max(0.0, busy - sum(ours.values()))
        self._loads.append(os.getloadavg()[0])
        self.result = {
            "wall_seconds": round(wall, 2),
            "cpu_seconds": {name: round(value, 2) for name, value in ours.items()},
            "machine_busy_cores": round(busy / wall, 2) if wall else None,
            "others_cores": round(others / wall, 2) if wall else None,
            "load_average_1min_max": round(max(self._loads), 2),
            "load_average_at_end": load_average(),
            "timeline_cores_per_second": self._timeline,
        }
        return self.result


def seconds_nearly_idle(timeline: Sequence[float], busy: float = 0.5) -> int:
    """Seconds a process used less than ``busy`` cores between its first and its last
    busy second: how long a worker that had work waited for something."""
    marks = [i for i, used in enumerate(timeline) if used >= busy]
    if not marks:
        return 0
    return sum(1 for used in timeline[marks[0] : marks[-1] + 1] if used < busy)


def _self_cpu_seconds() -> float:
    times = os.times()  # not the children's: a worker is counted by its pid
    return times.user + times.system


def loaded(meter: dict[str, Any]) -> bool:
    """Whether others used more than half a core while measuring (worth a warning)."""
    return bool(meter.get("others_cores") and meter["others_cores"] > 0.5)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(fraction * len(sorted_values))  # 1-based
    return sorted_values[max(0, min(len(sorted_values), rank) - 1)]


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
