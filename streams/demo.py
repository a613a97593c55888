"""``debitwatch demo``: the live product in one command (README, first command).

From a fresh checkout it starts a local Kafka broker (:mod:`streams.kafka_local`, data in
``.kafka/``), creates the topics, starts two stream workers, sends simulated traffic of
the default fault profile for about a minute (:func:`streams.live.run_live`) while the
alerts are printed as the workers publish them, then waits for the workers to catch up,
exports the alerts and scores them against the simulation's ground truth. Everything it
started is stopped at the end: on success, on error, and on Ctrl-C or SIGTERM.

Every run uses its own app id and topic names (``demo-<time>-<random>``), so a rerun never
reads an earlier run's data; the run's topics are deleted at the end. A broker already
running from the data dir (``--keep-kafka`` of an earlier run, ``debitwatch kafka start``)
is used as it is and left running; a broker this run did not start is never stopped.
If the client port is taken by something else, the demo's broker takes a free port.

Time: traffic runs at :data:`SPEED` x real time (a 5-minute match window plus a minute of
grace closes 12 s of wall time after the sale). ``--duration-seconds`` is the wall time of
the traffic: its first four fifths carry new sales, the last fifth the late arrivals
(redeliveries, late issuer feeds, refunds of ghost debits), after which far-future
watermarks close every window.

Files (``--out``, default ``out/demo``): ``capture.jsonl`` (what was sent, for an offline
``debitwatch replay``), ``truth.jsonl``, ``alerts.jsonl`` (the alerts topic, exported),
``logs/worker-N.log``.

Exit codes: 0 every kind at precision and recall 1.0; 1 the evaluation is below that;
2 usage error; 3 the broker, the topics or a worker failed (the reason on stderr);
130 interrupted (Ctrl-C, SIGTERM).

Only the standard library, ``rich`` and the light ``streams``/``models`` modules are
imported at module level: ``build_parser`` imports this module for every command, and the
Kafka clients are loaded only when the demo runs.
"""

from __future__ import annotations

import _thread
import argparse
import concurrent.futures
import contextlib
import dataclasses
import logging
import math
import re
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO, Final, cast

from rich.console import Console
from rich.markup import escape

from streams import kafka_local
from streams.kafka_cli import port_number
from streams.kafka_local import KafkaLocalError
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.cluster import WorkerProcess
    from streams.live import LiveSummary

DESCRIPTION: Final = (
    "Start a local Kafka broker, create the topics, start two stream workers, send about a "
    "minute of simulated traffic with the default fault profile while the alerts appear "
    "live, then score the alerts against the simulation's ground truth and stop everything "
    "(also on Ctrl-C). Exit 0 when every alert kind has precision and recall 1.0."
)

EXIT_OK: Final = 0
EXIT_EVALUATION: Final = 1
EXIT_FAILED: Final = 3
EXIT_INTERRUPTED: Final = 130

SPEED: Final = 30.0
"""Event-time seconds per wall-clock second."""
DEFAULT_RATE: Final = 3.0
"""Sales per second of event time: 90 a second of wall time at :data:`SPEED`, about 300
events a second (4.5 per sale in the default profile, a tenth of them clearing debits
hours late, sent together at the end). Measured on 2 cores shared with other jobs (load
4-6): two workers caught up a backlog at ~420 events/s and kept the live backlog flat at
this rate (it grew at 5 sales/s); on an idle machine they do twice that or more."""
DEFAULT_DURATION: Final = 60.0
DEFAULT_SEED: Final = 7
DEFAULT_PORT: Final = 9092
WORKERS: Final = 2
LATE_SHARE: Final = 0.2
"""Share of ``--duration-seconds`` left to late arrivals after the last new sale."""
STATUS_EVERY: Final = 5.0

WORKERS_READY_TIMEOUT: Final = 240.0
CATCH_UP_TIMEOUT: Final = 600.0
DRAIN_TIMEOUT: Final = 30.0
WORKER_STOP_TIMEOUT: Final = 30.0

_POLL_MS: Final = 200


class DemoError(Exception):
    """The demo cannot go on: the broker, the topics or a worker failed; says why."""


# --- options -----------------------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a number > 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` options (``streams.cli`` registers the subcommand)."""
    parser.add_argument(
        "--duration-seconds", type=_positive, default=DEFAULT_DURATION, metavar="S",
        help=f"wall-clock seconds of traffic, late arrivals included (default: "
        f"%(default)s; event time runs {SPEED:g}x faster)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=_positive, default=DEFAULT_RATE, metavar="TPS",
        help="sales per second of event time (default: %(default)s, i.e. "
        f"{DEFAULT_RATE * SPEED:g} a second of wall time)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="simulation seed (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port_number, metavar="PORT",
        help=f"client port of the demo's broker (default: {DEFAULT_PORT}, or a free port "
        "if that one is taken)",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", type=Path, default=kafka_local.DEFAULT_DATA_DIR, metavar="DIR",
        help="the broker's data dir (default: %(default)s); a broker already running from "
        "it is used and left running",
    )  # fmt: skip
    parser.add_argument(
        "--keep-kafka", action="store_true",
        help="leave the broker and this run's topics in place at the end",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("out") / "demo", metavar="DIR",
        help="where the capture, truth, alerts and worker logs go (default: %(default)s)",
    )  # fmt: skip


# --- output ------------------------------------------------------------------------------


def _console() -> Console:
    """As wide as the terminal, or 160 columns in logs and pipes (an alert line is ~150)."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=160)


def _step(console: Console, label: str, text: str) -> None:
    console.print(f"[bold cyan]{label:<9}[/] {text}", highlight=False)


def _alert_header() -> str:
    """Column names over :func:`streams.alerts_view.alert_line`'s columns."""
    return (
        f"{'detected at':<26}{'status':<9}{'severity':<9}{'kind':<27}{'terminal':<17}"
        f"{'stan':<7}{'amount':>16}  {'money at risk':<24}  probable cause"
    )


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _elapsed(since: float) -> str:
    return f"{time.monotonic() - since:.1f} s"


# --- broker ------------------------------------------------------------------------------


def _running_bootstrap(data_dir: Path) -> str | None:
    """``host:port`` of the broker running from ``data_dir``, read from its config."""
    try:
        text = (data_dir / "server.properties").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=PLAINTEXT://([^,\s]+)", text, re.MULTILINE)
    return match.group(1) if match else None


def _port_free(port: int) -> bool:
    """Whether a broker could listen on 127.0.0.1:port (SO_REUSEADDR, as Kafka binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((kafka_local.HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((kafka_local.HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@dataclasses.dataclass
class _Broker:
    bootstrap: str
    data_dir: Path
    started: bool


def _broker(args: argparse.Namespace, console: Console) -> _Broker:
    """The broker to use: the data dir's if it runs, else one started here."""
    data_dir: Path = args.data_dir
    if kafka_local.is_running(data_dir):
        bootstrap = _running_bootstrap(data_dir)
        if bootstrap is None:
            raise DemoError(
                f"a Kafka broker is running from {data_dir} but its server.properties does "
                "not say where it listens; stop it (`debitwatch kafka stop`) or pass --data-dir"
            )
        _step(console, "kafka", f"using the broker already running from {data_dir} at "
              f"{bootstrap} (left running at the end)")  # fmt: skip
        return _Broker(bootstrap, data_dir, started=False)
    port = args.port if args.port is not None else DEFAULT_PORT
    if args.port is None and not _port_free(port):
        port = _free_port()
        _step(console, "kafka", f"port {DEFAULT_PORT} is taken by another program (left "
              f"alone): the demo's broker uses port {port}")  # fmt: skip
    if not kafka_local.jars_present():
        _step(console, "kafka", "fetching the Kafka jars with Maven (first time only, ~30 s)")
    kafka_local.ensure_jars()
    started = time.monotonic()
    _step(console, "kafka", f"starting a broker on 127.0.0.1:{port} (data in {data_dir})")
    bootstrap = kafka_local.start(port=port, data_dir=data_dir)
    _step(console, "kafka", f"broker up at {bootstrap} in {_elapsed(started)}")
    return _Broker(bootstrap, data_dir, started=True)


def demo_settings(bootstrap: str, out: Path, tag: str) -> Settings:
    """Settings of one run: the app id and every topic name start with ``tag``."""
    return Settings(
        broker=f"kafka://{bootstrap}",
        app_id=tag,
        terminal_topic=f"{tag}.pos.terminal.events",
        issuer_topic=f"{tag}.bank.issuer.events",
        alerts_topic=f"{tag}.debitwatch.alerts",
        dlq_topic=f"{tag}.debitwatch.dlq",
        data_dir=out / "state" / tag,
    )


def _run_tag() -> str:
    return f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


# --- workers -----------------------------------------------------------------------------


def _wait_workers_ready(settings: Settings, workers: list[WorkerProcess], timeout: float) -> None:
    """Until every worker is a member of the app's consumer group and the group is stable
    (partitions assigned), so that traffic is processed from its first second."""
    from streams.kafka_clients import admin  # noqa: PLC0415 (loads kafka-python)

    deadline = time.monotonic() + timeout
    with admin(settings) as client:
        while True:
            for worker in workers:
                if not worker.alive:
                    raise DemoError(f"worker {worker.name} exited while starting; the end of "
                                    f"{worker.log_path}:\n{worker.log_tail()}")  # fmt: skip
            group: dict[str, Any] = {}
            with contextlib.suppress(Exception):  # no coordinator yet: ask again
                group = client.describe_groups([settings.app_id]).get(settings.app_id) or {}
            members = group.get("members") or []
            if group.get("group_state") == "Stable" and len(members) == len(workers):
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the workers did not join the consumer group {settings.app_id!r} within "
                    f"{timeout:.0f} s (state {group.get('group_state')!r}, {len(members)} "
                    f"members); the end of {workers[0].log_path}:\n{workers[0].log_tail()}"
                )
            time.sleep(0.5)


# --- live view ---------------------------------------------------------------------------


class _CountingWriter:
    """The capture file of what was sent, counting the events as they are written."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.lines = 0

    def write(self, data: bytes) -> int:
        self.lines += 1
        return self._handle.write(data)


class _AlertTail(threading.Thread):
    """Prints every alert state change of the alerts topic as soon as it is published."""

    def __init__(self, settings: Settings, console: Console) -> None:
        super().__init__(name="demo-alert-tail", daemon=True)
        self._settings = settings
        self._console = console
        self._stopping = threading.Event()
        self._positions: dict[int, int] = {}
        self.firing = 0
        self.resolved = 0
        self.other = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from streams.alerts_view import alert_line  # noqa: PLC0415
        from streams.kafka_clients import consumer, topic_partitions  # noqa: PLC0415

        try:
            reader = consumer(self._settings)
        except BaseException as error:
            self.error = error
            return
        try:
            partitions = topic_partitions(reader, self._settings.alerts_topic)
            reader.assign(partitions)
            reader.seek_to_beginning(*partitions)
            while not self._stopping.is_set():
                for records in reader.poll(timeout_ms=_POLL_MS).values():
                    for record in records:
                        self._show(record.value, alert_line)
                self._positions = {tp.partition: reader.position(tp) for tp in partitions}
        except BaseException as error:
            self.error = error
        finally:
            reader.close()

    def _show(self, value: bytes | None, alert_line: Any) -> None:
        import msgspec  # noqa: PLC0415

        if value is None or self._stopping.is_set():
            return  # a tombstone; or stopping: after Ctrl-C, not the final watermarks' alerts
        try:
            alert = msgspec.json.decode(value)
        except msgspec.DecodeError:
            alert = None
        if not isinstance(alert, dict):
            self.other += 1
            self._console.print(f"[magenta]not an alert:[/] {escape(repr(value[:120]))}")
            return
        status = alert.get("status")
        if status == "firing":
            self.firing += 1
        elif status == "resolved":
            self.resolved += 1
        else:
            self.other += 1
        # soft_wrap: a narrow terminal wraps the line itself; rich would cut it mid-word
        self._console.print(alert_line(alert), highlight=False, soft_wrap=True)

    def reached(self, ends: dict[int, int]) -> bool:
        """Whether every partition has been read up to ``ends`` (partition -> offset)."""
        positions = self._positions
        return all(positions.get(partition, 0) >= end for partition, end in ends.items())

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


class _Status(threading.Thread):
    """One status line every few seconds; interrupts the main thread if a worker dies."""

    def __init__(
        self,
        settings: Settings,
        console: Console,
        workers: list[WorkerProcess],
        tail: _AlertTail,
        sent: _CountingWriter,
        start_ms: int,
    ) -> None:
        super().__init__(name="demo-status", daemon=True)
        self._settings, self._console, self._workers = settings, console, workers
        self._tail, self._sent, self._start_ms = tail, sent, start_ms
        self._stopping = threading.Event()
        self._began = time.monotonic()
        self.traffic_done = False
        self.failure: str | None = None

    def run(self) -> None:
        next_line = self._began + STATUS_EVERY
        while not self._stopping.wait(0.5):
            dead = [worker for worker in self._workers if not worker.alive]
            # After the traffic, wait_caught_up watches the workers itself.
            if dead and not self.traffic_done:
                worker = dead[0]
                self.failure = (
                    f"worker {worker.name} exited; the end of {worker.log_path}:\n"
                    f"{worker.log_tail()}"
                )
                _thread.interrupt_main()  # run_live stops; run_demo reports the failure
                return
            if time.monotonic() >= next_line:
                next_line += STATUS_EVERY
                self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self._began
        phase = "catching up" if self.traffic_done else "traffic"
        event_ms = self._start_ms + elapsed * SPEED * 1000
        clock = datetime.fromtimestamp(event_ms / 1000, UTC).strftime("%H:%M:%S")
        when = "" if self.traffic_done else f" · event time {clock}Z"
        alive = sum(worker.alive for worker in self._workers)
        tail = self._tail
        self._console.print(
            f"[dim]── {elapsed:4.0f} s {phase}: {self._sent.lines:,} events sent{when} · "
            f"{tail.firing:,} firing, {tail.resolved:,} resolved shown · "
            f"workers {alive}/{len(self._workers)} up{self._backlog()}[/]",
            highlight=False,
        )

    def _backlog(self) -> str:
        """`` · backlog N`` (messages not yet committed by the workers), or nothing."""
        from streams.cluster import consumer_lag  # noqa: PLC0415

        try:
            return f" · backlog {consumer_lag(self._settings):,}"
        except Exception:  # a status line is no reason to fail
            return ""

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


# --- the run -----------------------------------------------------------------------------


class _Demo:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.out: Path = args.out
        self.broker: _Broker | None = None
        self.settings: Settings | None = None
        self.workers: list[WorkerProcess] = []
        self.tail: _AlertTail | None = None
        self.status: _Status | None = None

    @property
    def failure(self) -> str | None:
        return self.status.failure if self.status is not None else None

    def run(self) -> int:
        args, console = self.args, self.console
        wall = float(args.duration_seconds)
        traffic_wall = wall * (1 - LATE_SHARE)
        transactions = round(args.rate * traffic_wall * SPEED)
        console.print(
            f"[bold]debitwatch demo[/]: {WORKERS} workers on a local Kafka, {wall:g} s of "
            f"simulated traffic (default fault profile, seed {args.seed}), then the evaluation",
            highlight=False,
        )
        self.out.mkdir(parents=True, exist_ok=True)
        self.broker = _broker(args, console)
        tag = _run_tag()
        settings = self.settings = demo_settings(self.broker.bootstrap, self.out, tag)
        self._create_topics(settings)
        self._start_workers(settings)

        from streams.live import Pace, now_ms, run_live  # noqa: PLC0415
        from streams.simulator.generator import SimulationConfig  # noqa: PLC0415
        from streams.simulator.profiles import PROFILES  # noqa: PLC0415

        config = SimulationConfig(
            profile=PROFILES["default"],
            transactions=transactions,
            seed=args.seed,
            start_ms=now_ms(),
            rate=args.rate,
        )
        pace = Pace(speed=SPEED, max_lateness=wall * LATE_SHARE * SPEED)
        closes = (settings.detection.match_window + settings.detection.grace) / SPEED
        _step(console, "traffic", (
            f"{transactions:,} sales at {args.rate:g}/s of event time, {SPEED:g}x real time: "
            f"new sales for {traffic_wall:g} s, late arrivals until {wall:g} s; a sale's "
            f"window closes ~{closes:.0f} s after it"
        ))  # fmt: skip
        console.print(f"[dim]{escape(_alert_header())}[/]", highlight=False)
        tail = self.tail = _AlertTail(settings, console)
        tail.start()
        capture_path = self.out / "capture.jsonl"
        with capture_path.open("wb") as capture:
            sent = _CountingWriter(capture)
            status = self.status = _Status(
                settings, console, self.workers, tail, sent, config.start_ms
            )
            status.start()
            summary = run_live(settings, config, pace, capture_out=cast(BinaryIO, sent))
        if summary.interrupted:
            raise KeyboardInterrupt
        status.traffic_done = True
        events = sum(summary.events.values())
        _step(console, "traffic", f"done: {events:,} events of {summary.transactions:,} "
              f"sales sent in {summary.seconds:.1f} s, then far-future watermarks on every "
              "input partition (every window closes)")  # fmt: skip
        return self._finish(settings, summary)

    def _create_topics(self, settings: Settings) -> None:
        from streams.topics import create_topics  # noqa: PLC0415

        outcomes = create_topics(settings)
        created = sum(outcome.created for outcome in outcomes)
        _step(self.console, "topics", f"created {created} topics named {settings.app_id}.* "
              f"and {settings.app_id}-* ({settings.partitions} partitions)")  # fmt: skip

    def _start_workers(self, settings: Settings) -> None:
        from streams.cluster import WorkerProcess  # noqa: PLC0415

        started = time.monotonic()
        log_dir = self.out / "logs"
        for number in range(1, WORKERS + 1):
            (log_dir / f"worker-{number}.log").unlink(missing_ok=True)
            worker = WorkerProcess(
                settings, name=f"worker-{number}", web_port=_free_port(), log_dir=log_dir
            )
            # Tracked before it exists: an interrupt during the start must still stop it
            # (the shutdown also sweeps for a worker caught between fork and bookkeeping).
            self.workers.append(worker)
            worker.start()
        _wait_workers_ready(settings, self.workers, WORKERS_READY_TIMEOUT)
        _step(self.console, "workers", f"{WORKERS} workers up and sharing the partitions in "
              f"{_elapsed(started)} (logs in {log_dir})")  # fmt: skip
        first = f"http://127.0.0.1:{self.workers[0].settings.web_port}"
        _step(self.console, "web", f"triage page {first}/triage, API {first}/alerts, "
              f"metrics {first}/metrics (while the demo runs)")  # fmt: skip

    def _finish(self, settings: Settings, summary: LiveSummary) -> int:
        from streams.alerts_view import export  # noqa: PLC0415
        from streams.cluster import wait_caught_up  # noqa: PLC0415
        from streams.kafka_clients import end_offsets  # noqa: PLC0415
        from streams.simulator.writer import write_truth  # noqa: PLC0415

        console = self.console
        waited = wait_caught_up(settings, timeout=CATCH_UP_TIMEOUT, workers=self.workers)
        assert self.tail is not None and self.status is not None
        ends = end_offsets(settings, settings.alerts_topic)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not self.tail.reached(ends) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.status.stop()
        self.tail.stop()
        tail = self.tail
        _step(console, "caught up", f"every event processed {waited:.1f} s after the traffic "
              f"ended; {tail.firing:,} firing and {tail.resolved:,} resolved alert states "
              "shown live")  # fmt: skip
        if tail.error is not None:
            console.print(f"[yellow]the live alert view failed:[/] {escape(str(tail.error))}")

        alerts_path, truth_path = self.out / "alerts.jsonl", self.out / "truth.jsonl"
        exported = export(settings, alerts_path, until_idle=1.0)
        assert summary.truth is not None
        with truth_path.open("wb") as handle:
            expected = write_truth(summary.truth, handle)
        _step(console, "export", f"{_plural(exported, 'alert record')} -> {alerts_path}; "
              f"ground truth ({_plural(expected, 'expected alert')}) -> {truth_path}")  # fmt: skip
        return _evaluate(truth_path, alerts_path, console)

    # --- shutdown ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop everything this run started, saying so step by step; each step runs even
        if an earlier one failed."""
        for thread in (self.status, self.tail):
            if thread is not None:
                with contextlib.suppress(Exception):
                    thread.stop()
        keep = self.args.keep_kafka
        settings, broker = self.settings, self.broker
        if self.workers:
            self._say(self._stop_workers)
        if settings is not None and broker is not None and not keep:
            self._say(lambda: _delete_run_topics(settings))
        if settings is not None:
            shutil.rmtree(settings.data_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                settings.data_dir.parent.rmdir()  # only if no other run's state is there
        if broker is None:
            return
        if broker.started and not keep:
            self._say(lambda: _stop_broker(broker))
            return
        how = "--keep-kafka" if broker.started else "not started by this run"
        _step(self.console, "shutdown", (
            f"broker left running at {broker.bootstrap} ({how}); stop it with `debitwatch "
            f"kafka stop --data-dir {escape(str(broker.data_dir))}`"
        ))  # fmt: skip
        if keep and settings is not None:
            _step(self.console, "shutdown", f"this run's topics kept: {settings.app_id}.*, "
                  f"{settings.app_id}-*")  # fmt: skip

    def _say(self, action: Callable[[], str]) -> None:
        try:
            line = action()
        except Exception as error:  # go on with the next step
            line = f"[red]failed:[/] {escape(str(error))}"
        _step(self.console, "shutdown", line)

    def _stop_workers(self) -> str:
        from streams.cluster import stop_strays  # noqa: PLC0415

        with concurrent.futures.ThreadPoolExecutor(len(self.workers)) as pool:
            codes = list(pool.map(lambda w: w.stop(WORKER_STOP_TIMEOUT), self.workers))
        if self.settings is not None:
            stop_strays(self.settings.app_id)
        shown = ", ".join(str(code) for code in codes if code is not None)
        return f"{_plural(len(codes), 'worker')} stopped (SIGTERM; exit {shown})"


def _stop_broker(broker: _Broker) -> str:
    kafka_local.stop(broker.data_dir)
    return f"broker stopped ({broker.bootstrap})"


def _delete_run_topics(settings: Settings) -> str:
    """Delete every topic of the run (ours and Faust's, all prefixed with the app id) and
    the consumer group, so that the broker's data dir does not grow run after run."""
    from streams.kafka_clients import admin  # noqa: PLC0415

    try:
        with admin(settings) as client:
            names = [name for name in client.list_topics() if name.startswith(settings.app_id)]
            if names:
                client.delete_topics(names, timeout_ms=15_000, raise_errors=False)
            with contextlib.suppress(Exception):
                client.delete_groups([settings.app_id])
    except Exception as error:  # housekeeping: say so, go on stopping
        return f"[yellow]topics not deleted:[/] {escape(str(error))}"
    return f"{_plural(len(names), 'topic')} of this run deleted"


def _evaluate(truth_path: Path, alerts_path: Path, console: Console) -> int:
    """Score the exported alerts against the truth (as ``debitwatch evaluate`` does); 0 if
    precision and recall are 1.0 for every kind and overall, else 1."""
    from models.evaluation import evaluate  # noqa: PLC0415
    from models.final_states import ALERT_DECODER  # noqa: PLC0415
    from models.truth import TruthRecord, decode_truth_line  # noqa: PLC0415
    from streams import report  # noqa: PLC0415

    def lines(path: Path) -> list[bytes]:
        return [line for line in path.read_bytes().splitlines() if line.strip()]

    # Transaction alerts only: incident lines (IncidentTruth) are not scored here yet.
    truth = [
        record
        for record in map(decode_truth_line, lines(truth_path))
        if isinstance(record, TruthRecord)
    ]
    alerts = [ALERT_DECODER.decode(line) for line in lines(alerts_path)]
    result = evaluate(truth, alerts)
    console.print()
    report.evaluation(result, console)
    scores = {**result.per_kind, "overall": result.overall}
    failed = [
        f"{kind}: precision {score.precision:.4f}, recall {score.recall:.4f}"
        for kind, score in scores.items()
        if score.precision < 1.0 or score.recall < 1.0
    ]
    for reason in failed:
        console.print(f"[red]below 1.0:[/] {reason}")
    for label, ids in (
        ("false positive", result.false_positive_ids),
        ("false negative", result.false_negative_ids),
    ):
        for alert_id in ids[:10]:
            console.print(f"{label}: {alert_id}")
    return EXIT_EVALUATION if failed else EXIT_OK


# --- signals -----------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    """Run ``debitwatch demo``; return the exit code (module docstring).

    SIGTERM stops the run as Ctrl-C does. During the shutdown both are acknowledged but
    not obeyed: it must finish, or the broker and the workers would be left running.
    """
    from streams.kafka_clients import BrokerError  # noqa: PLC0415 (loads kafka-python)

    # kafka-python warns on stderr about Faust's own group-protocol metadata and about
    # connections refused while a broker starts: noise for the demo's reader.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    console = _console()
    err = Console(stderr=True, soft_wrap=True)
    demo = _Demo(args, console)
    started = time.monotonic()
    code = EXIT_FAILED

    def be_patient(signum: int, frame: FrameType | None) -> None:
        console.print("[yellow]stopping the workers and the broker; one moment[/]")

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in handled}
    for sig in handled:  # SIGINT too: a shell starts background jobs with it ignored
        signal.signal(sig, _interrupt)
    try:
        try:
            code = demo.run()
        except KeyboardInterrupt:
            if demo.failure is not None:
                err.print(f"[red]debitwatch demo:[/] {escape(demo.failure)}", highlight=False)
                code = EXIT_FAILED
            else:
                console.print("\n[yellow]interrupted[/]: stopping everything the demo started")
                code = EXIT_INTERRUPTED
        except (DemoError, KafkaLocalError, BrokerError, RuntimeError, OSError) as error:
            err.print(f"[red]debitwatch demo:[/] {escape(str(error))}", highlight=False)
        finally:
            for sig in handled:
                signal.signal(sig, be_patient)
            demo.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == EXIT_OK:
        console.print(f"[bold green]demo OK[/]: every alert kind found with precision and "
                      f"recall 1.0, in {time.monotonic() - started:.0f} s; files in "
                      f"{escape(str(args.out))}/", highlight=False)  # fmt: skip
    elif code == EXIT_EVALUATION:
        console.print("[bold red]demo FAILED[/]: the stream's alerts differ from the ground "
                      "truth (see above)")  # fmt: skip
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.demo`` (the same as ``debitwatch demo``)."""
    parser = argparse.ArgumentParser(prog="debitwatch demo", description=DESCRIPTION)
    add_arguments(parser)
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
