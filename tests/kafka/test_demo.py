"""``debitwatch demo`` end to end, as ``make demo`` runs it: its own broker (a free port, a
data dir under tmp_path, so it never meets another test's broker), two workers, live
traffic, the evaluation, and nothing left running afterwards, also after Ctrl-C/SIGTERM.

"Nothing left" is checked on /proc: no process whose command line or environment names
this test's tmp_path (the broker's command line has its data dir, every worker's
environment its state dir).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.demo import _running_bootstrap
from tests.kafka.conftest import free_port

ALERT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+Z\s+(firing|resolved)\s", re.MULTILINE)
SHOWN_LIVE = re.compile(r"([\d,]+) firing and ([\d,]+) resolved alert states shown live")


def _command() -> list[str]:
    script = Path(sys.executable).with_name("debitwatch")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "streams.cli"]


class Demo:
    """A ``debitwatch demo`` subprocess writing to files under ``tmp_path``."""

    def __init__(self, tmp_path: Path, *args: str, port: int | None = None) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "kafka"
        self.out = tmp_path / "out"
        self.stdout_path = tmp_path / "stdout.txt"
        self.stderr_path = tmp_path / "stderr.txt"
        command = [
            *_command(), "demo", "--port", str(port or free_port()),
            "--data-dir", str(self.data_dir), "--out", str(self.out), *args,
        ]  # fmt: skip
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err)
        self.started = time.monotonic()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout:\n{self.stdout}\n--- stderr:\n{self.stderr}"

    def wait_for(self, pattern: str, timeout: float) -> None:
        """Until a stdout line matches ``pattern`` (a regex); fails if the demo exits."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.stdout, re.MULTILINE):
            assert self.process.poll() is None, f"demo exited early\n{self.output()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in {timeout} s\n{self.output()}"
            time.sleep(0.2)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo still running after {timeout} s\n{self.output()}")

    def close(self) -> None:
        """After a failed test: stop the demo the way a user would, then for sure."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    """``start_demo(*args, port=None)``: a running demo, stopped at the end whatever happens."""
    started: list[Demo] = []

    def start(*args: str, port: int | None = None) -> Demo:
        demo = Demo(tmp_path, *args, port=port)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.close()


def processes_naming(marker: Path) -> list[str]:
    """Live processes (not zombies) whose command line or environment contains ``marker``."""
    needle = str(marker).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state != "Z" and (needle in command or needle in environment):
            shown = command.replace(b"\0", b" ")[:160]
            found.append(f"{entry.name}: {shown!r}")
    return found


def assert_nothing_left(demo: Demo) -> None:
    left = processes_naming(demo.tmp_path)
    assert left == [], f"processes left running: {left}\n{demo.output()}"
    assert not (demo.data_dir / "kafka.pid").exists(), "the broker's pid file is still there"


@pytest.mark.slow
def test_demo_streams_alerts_live_then_evaluates_and_stops_everything(start_demo):
    demo = start_demo("--duration-seconds", "24")
    code = demo.wait(600)
    stdout = demo.stdout
    assert code == 0, demo.output()
    assert "Traceback" not in demo.stderr, demo.output()

    # Alerts were printed live: by the tail of the alerts topic while the traffic was
    # still flowing (windows close ~12 s after a sale), and every state change once.
    alerts = ALERT_LINE.findall(stdout)
    traffic_done = stdout.index("traffic   done:")
    first_alert = ALERT_LINE.search(stdout)
    assert first_alert is not None, demo.output()
    assert first_alert.start() < traffic_done, f"no alert before the traffic ended\n{stdout}"
    shown = SHOWN_LIVE.search(stdout)
    assert shown is not None, demo.output()
    firing, resolved = (int(n.replace(",", "")) for n in shown.groups())
    assert (firing, resolved) == (alerts.count("firing"), alerts.count("resolved"))
    exported = (demo.out / "alerts.jsonl").read_text().splitlines()
    assert len(exported) == len(alerts) > 0
    assert re.search(r"^── +\d+ s traffic: [\d,]+ events sent", stdout, re.MULTILINE)

    # The evaluation table, all 1.0, and the clean shutdown.
    assert "detection vs ground truth" in stdout
    overall = re.search(r"overall .*", stdout)
    assert overall is not None and overall.group().count("1.0000") == 3, stdout
    assert "2 workers stopped (SIGTERM; exit 0, 0)" in stdout
    assert "broker stopped" in stdout
    assert "demo OK" in stdout
    assert (demo.out / "truth.jsonl").stat().st_size > 0
    assert not (demo.out / "state").exists(), "the workers' state was not removed"
    assert_nothing_left(demo)


@pytest.mark.slow
def test_ctrl_c_during_traffic_stops_everything_and_exits_130(start_demo):
    demo = start_demo("--duration-seconds", "120")
    demo.wait_for(r"^── +\d+ s traffic:", timeout=300)  # workers up, traffic flowing
    demo.process.send_signal(signal.SIGINT)
    code = demo.wait(180)
    assert code == 130, demo.output()
    assert "interrupted" in demo.stdout
    assert "broker stopped" in demo.stdout
    assert "detection vs ground truth" not in demo.stdout
    assert "Traceback" not in demo.stderr, demo.output()
    assert_nothing_left(demo)


@pytest.mark.slow
def test_sigterm_while_workers_start_stops_everything_and_exits_130(start_demo):
    demo = start_demo("--duration-seconds", "120")
    demo.wait_for(r"^topics ", timeout=300)  # broker up, workers being started
    demo.process.send_signal(signal.SIGTERM)
    code = demo.wait(180)
    assert code == 130, demo.output()
    assert "broker stopped" in demo.stdout
    assert "Traceback" not in demo.stderr, demo.output()
    assert_nothing_left(demo)


def test_a_taken_port_given_explicitly_is_an_error_and_nothing_starts(start_demo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = start_demo(port=taken.getsockname()[1])
        code = demo.wait(120)
    assert code == 3, demo.output()
    assert "already in use" in demo.stderr
    assert "Traceback" not in demo.stderr, demo.output()
    assert_nothing_left(demo)


def test_running_bootstrap_is_read_from_the_brokers_config(tmp_path):
    assert _running_bootstrap(tmp_path) is None
    (tmp_path / "server.properties").write_text(
        "node.id=1\nadvertised.listeners=PLAINTEXT://127.0.0.1:19092\nlog.dirs=/x\n"
    )
    assert _running_bootstrap(tmp_path) == "127.0.0.1:19092"
