"""A real local single-node Apache Kafka 4.x broker (KRaft) for development, tests, CI and demos.

Why this exists: the stream tests and the demo need a broker that speaks the real protocol,
and the machines this project runs on have Java and Maven but no Docker. So the broker is
the official ``kafka_2.13`` jar from Maven Central (``deploy/kafka/pom.xml``), run with
``java -cp 'lib/*' kafka.Kafka`` as one combined broker+controller node on 127.0.0.1.

Files of one broker, all under its ``data_dir`` (see docs/kafka-local.md)::

    server.properties   written anew at every start
    data/               log.dirs: topic partitions and the KRaft metadata log (formatted once)
    kafka.out           the JVM's stdout and stderr (warnings, errors, "Kafka Server started")
    server.log          warnings and errors only (deploy/kafka/log4j2.yaml), rolled at 10 MB
    kafka.pid           the broker's process id while it runs
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kafka"
POM = DEPLOY_DIR / "pom.xml"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.yaml"
DEFAULT_LIB_DIR = DEPLOY_DIR / "lib"
DEFAULT_DATA_DIR = Path(".kafka")
HOST = "127.0.0.1"
NODE_ID = 1
MIN_JAVA = 17
START_TIMEOUT = 60.0

# A development broker: small heap, the GC settings of Kafka's own kafka-run-class.sh, and
# the C1 JIT only (TieredStopAtLevel=1): that halves the CPU of a start (about 11 s -> 6 s
# measured on the 2-core machine), which the tests share with the broker, for a lower peak
# throughput that a local broker fed by Python clients does not reach. Drop it to benchmark.
JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

SERVER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

# Popen objects of the brokers this process started: kept so that stop() can reap them
# (a dead child that is never waited for stays a zombie and looks alive to kill(pid, 0)).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class KafkaLocalError(Exception):
    """The local broker cannot be set up, started or stopped; the message says why."""


# --- tools -----------------------------------------------------------------------------


def find_java() -> str:
    """The ``java`` to run: $JAVA_HOME's if set (as Kafka's scripts do), else the PATH's."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaLocalError(
            "java was not found on PATH (nor in $JAVA_HOME): the local Kafka broker needs "
            f"Java {MIN_JAVA} or newer, e.g. `apt-get install openjdk-17-jre-headless`"
        )
    return found


def java_major_version(java: str) -> int:
    """Major version of a ``java`` binary, read from ``java -version`` (8 for "1.8.0_x")."""
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KafkaLocalError(f"cannot run {java} -version: {error}") from error
    match = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    if match is None:
        raise KafkaLocalError(f"cannot tell the version of {java}: {result.stderr.strip()!r}")
    parts = re.split(r"[._\-+]", match.group(1))
    major = int(parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0])
    return major


def check_java() -> str:
    """The path of a Java runtime new enough for Kafka 4 (17+), or a clear error."""
    java = find_java()
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise KafkaLocalError(
            f"{java} is Java {major}: Kafka 4 brokers need Java {MIN_JAVA} or newer "
            "(e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME)"
        )
    return java


def _find_mvn() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise KafkaLocalError(
            "mvn was not found on PATH: Apache Maven fetches the Kafka jars from Maven "
            "Central once (deploy/kafka/pom.xml), e.g. `apt-get install maven`"
        )
    return found


# --- jars ------------------------------------------------------------------------------


def _stamp_name(pom: Path) -> str:
    """Name of the marker saying the lib dir holds the jars of exactly this pom."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    return f".pom-{digest}"


def jars_present(lib_dir: Path | None = None) -> bool:
    """Whether ensure_jars() would skip Maven (the jars of the current pom are there)."""
    lib = lib_dir or DEFAULT_LIB_DIR
    return (lib / _stamp_name(POM)).is_file()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, so that parallel test workers run Maven only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_dependencies(mvn: str, target: Path) -> None:
    """Materialise the pom's runtime classpath into ``target`` (downloads go to ~/.m2)."""
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={target}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        raise KafkaLocalError(
            f"Maven could not fetch the Kafka jars (exit {result.returncode}): "
            + "\n".join(output[-20:])
        )
    if not any(target.glob("kafka_*.jar")):
        raise KafkaLocalError(f"Maven ran but left no kafka_*.jar in {target}")


def ensure_jars(lib_dir: Path | None = None) -> Path:
    """The directory of the broker's jars, fetched with Maven if this pom's are not there.

    Maven runs once per version of deploy/kafka/pom.xml: a stamp file named after the pom's
    checksum marks a complete copy, so a changed pom (new Kafka version) refetches and an
    interrupted copy is redone. Jars left by an older pom are removed.
    """
    lib = (lib_dir or DEFAULT_LIB_DIR).resolve()
    check_java()
    if not POM.is_file():
        raise KafkaLocalError(f"{POM} is missing: run from a checkout of debitwatch")
    stamp = lib / _stamp_name(POM)
    if stamp.is_file():
        return lib
    mvn = _find_mvn()
    with _locked(lib.parent / f".{lib.name}.lock"):
        if stamp.is_file():  # another process fetched them while we waited
            return lib
        staging = lib.parent / f".{lib.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _copy_dependencies(mvn, staging)
        lib.mkdir(parents=True, exist_ok=True)
        for old in lib.iterdir():
            if old.suffix == ".jar" or old.name.startswith(".pom-"):
                old.unlink()
        for jar in staging.iterdir():
            jar.rename(lib / jar.name)
        staging.rmdir()
        stamp.touch()
    return lib


# --- configuration ---------------------------------------------------------------------


def _port_free(port: int) -> bool:
    """Whether a server could listen on HOST:port now (SO_REUSEADDR, as Kafka binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _require_free(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise KafkaLocalError(f"{what} port {port} is not between 1 and 65535")
    if not _port_free(port):
        raise KafkaLocalError(
            f"{what} port {port} on {HOST} is already in use (another Kafka broker? "
            f"stop it, or choose another port)"
        )


def _pick_controller_port(port: int, controller_port: int | None) -> int:
    """The requested controller port, else port + 1 when free, else any free port."""
    if controller_port is not None:
        if controller_port == port:
            raise KafkaLocalError(f"broker and controller cannot share port {port}")
        _require_free(controller_port, "controller")
        return controller_port
    if port < 65535 and _port_free(port + 1):
        return port + 1
    return _free_port()


def server_properties(port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
    """Settings of a combined broker+controller node: one replica of everything, no waits.

    The controller quorum is the 4.x dynamic style (``controller.quorum.bootstrap.servers``
    with a ``--standalone`` format), so restarting on other ports needs no reformat.
    """
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        # One broker: every internal topic has one replica, and few partitions so that
        # the first consumer group or transaction does not wait for 50 to be created.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # No 3 s wait for more members before the first rebalance of a group.
        "group.initial.rebalance.delay.ms": "0",
        # A 2-core machine shared with the tests.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
    }


def _property_value(value: str) -> str:
    """``value`` as java.util.Properties reads it back: Kafka loads the file as ISO-8859-1
    and takes a backslash as an escape, so both are escaped (a data dir may have either)."""
    out = []
    for char in value.replace("\\", "\\\\"):
        if " " <= char <= "~":
            out.append(char)
            continue
        units = char.encode("utf-16-be")  # one \uXXXX per UTF-16 unit
        out += [f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)]
    return "".join(out)


def _write_properties(path: Path, properties: dict[str, str]) -> None:
    lines = ["# Written by streams/kafka_local.py at every start; edits are overwritten."]
    lines += [f"{key}={_property_value(value)}" for key, value in properties.items()]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _cluster_id() -> str:
    """A random cluster id in Kafka's form (Uuid.randomUuid: URL-safe base64, no padding)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return text


def _java_command(java: str, lib: Path, data_dir: Path, main: str, *args: str) -> list[str]:
    return [
        java,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={data_dir}",
        "-cp",
        f"{lib}/*",
        main,
        *args,
    ]


def _format_storage(java: str, lib: Path, data_dir: Path, config: Path, log_dir: Path) -> None:
    """``kafka-storage.sh format --standalone`` on a fresh log dir; a formatted one is kept."""
    if (log_dir / "meta.properties").is_file():
        return
    arguments = ("format", "--standalone", "--cluster-id", _cluster_id(), "--config", str(config))
    command = _java_command(java, lib, data_dir, STORAGE_TOOL, *arguments)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as error:
        raise KafkaLocalError(f"formatting {log_dir} took over 120 s") from error
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise KafkaLocalError(f"formatting {log_dir} failed (exit {result.returncode}): {output}")


# --- processes -------------------------------------------------------------------------


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "kafka.pid"


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int(_pid_file(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live Kafka broker (not a zombie, not a reused pid)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, but not ours to judge further
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command_line = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(pid, 0) is all we can tell
    return state != "Z" and SERVER_MAIN.encode() in command_line


def is_running(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Whether the broker of ``data_dir`` (by its pid file) is running."""
    pid = _read_pid(data_dir)
    return pid is not None and _alive(pid)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"


def _probe(bootstrap: str) -> bool:
    """Whether the broker answers a real request and lists itself as an unfenced broker."""
    host, port = bootstrap.rsplit(":", 1)
    try:  # a plain connect first: kafka-python would log every refused connection
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    # Imported here: only the readiness probe needs a Kafka client.
    from kafka import KafkaAdminClient  # noqa: PLC0415
    from kafka.errors import (  # noqa: PLC0415
        KafkaConfigurationError,
        KafkaError,
    )

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="debitwatch-kafka-local-probe",
            request_timeout_ms=5000,
            bootstrap_timeout_ms=5000,
        )
    except KafkaConfigurationError as error:  # our bug, not a broker still starting
        raise KafkaLocalError(f"cannot probe the broker: {error}") from error
    except KafkaError:
        return False
    try:
        cluster = admin.describe_cluster()
    except KafkaError:
        return False
    finally:
        admin.close()
    brokers = cluster.get("brokers") or []
    return any(b.get("broker_id") == NODE_ID and not b.get("is_fenced") for b in brokers)


def _wait_ready(
    process: subprocess.Popen[bytes], bootstrap: str, out: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KafkaLocalError(
                f"the Kafka broker exited with code {process.returncode} while starting; "
                f"the end of {out}:\n{_tail(out)}"
            )
        if _probe(bootstrap):
            return
        time.sleep(0.2)
    raise KafkaLocalError(
        f"the Kafka broker did not answer on {bootstrap} within {timeout:.0f} s; "
        f"the end of {out}:\n{_tail(out)}"
    )


def start(
    port: int = 9092,
    data_dir: Path = DEFAULT_DATA_DIR,
    controller_port: int | None = None,
    *,
    lib_dir: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> str:
    """Start a broker in the background and return its bootstrap address "127.0.0.1:PORT".

    Returns once the broker answers a real request. The broker outlives the caller (own
    session); stop it with stop(). The controller listens on ``controller_port``, by
    default ``port + 1`` when free. Data persist in ``data_dir`` across restarts.
    """
    data_dir = data_dir.resolve()
    pid = _read_pid(data_dir)
    if pid is not None and _alive(pid):
        raise KafkaLocalError(
            f"a Kafka broker from {data_dir} is already running (pid {pid}); "
            f"stop it first (`debitwatch kafka stop --data-dir {data_dir}`)"
        )
    _require_free(port, "broker")
    cport = _pick_controller_port(port, controller_port)
    java = check_java()
    lib = ensure_jars(lib_dir)

    data_dir.mkdir(parents=True, exist_ok=True)
    _pid_file(data_dir).unlink(missing_ok=True)
    log_dir = data_dir / "data"
    config = data_dir / "server.properties"
    _write_properties(config, server_properties(port, cport, log_dir))
    _format_storage(java, lib, data_dir, config, log_dir)

    out = data_dir / "kafka.out"
    with out.open("wb") as out_handle:
        process = subprocess.Popen(
            _java_command(java, lib, data_dir, SERVER_MAIN, str(config)),
            stdin=subprocess.DEVNULL,
            stdout=out_handle,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    _pid_file(data_dir).write_text(f"{process.pid}\n")
    bootstrap = f"{HOST}:{port}"
    try:
        _wait_ready(process, bootstrap, out, timeout)
    except BaseException:
        stop(data_dir, timeout=10)
        raise
    return bootstrap


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def stop(data_dir: Path = DEFAULT_DATA_DIR, timeout: float = 30) -> bool:
    """Stop the broker of ``data_dir``: SIGTERM (a clean shutdown), SIGKILL after ``timeout``.

    Returns whether a broker was running. The pid file is removed either way.
    """
    data_dir = data_dir.resolve()
    pid = _read_pid(data_dir)
    running = pid is not None and _alive(pid)
    if pid is not None and running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 10):
                raise KafkaLocalError(f"the Kafka broker (pid {pid}) survived SIGKILL")
    if pid is not None:
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)
    _pid_file(data_dir).unlink(missing_ok=True)
    return running
