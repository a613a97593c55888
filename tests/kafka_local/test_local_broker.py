"""streams.kafka_local: a real single-node Kafka 4 broker (KRaft) from the Maven Central jars.

One test runs a real broker (start, topic, produce, consume in a group, stop); the others
check the refusals, which must come before any JVM is started. The jars are fetched by
Maven on the first run only (about 20-30 s more, then cached in deploy/kafka/lib).
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from streams import kafka_cli, kafka_local
from streams.kafka_local import KafkaLocalError

TOPIC = "kafka-local-roundtrip"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another socket listens on for the length of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _round_trip(bootstrap: str) -> list[tuple[bytes, bytes]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(TOPIC, key=b"card-1", value=b"ghost debit?").get(timeout=15)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="kafka-local-test",  # a real group: the offsets topic must work too
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
    )
    try:
        records = []
        for record in consumer:
            records.append((record.key, record.value))
            break
        consumer.commit()
    finally:
        consumer.close()
    return records


def test_broker_starts_serves_a_topic_and_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka data"  # a space: paths reach Java as they are
    port = _free_port()
    bootstrap = kafka_local.start(port=port, data_dir=data_dir)
    try:
        assert bootstrap == f"127.0.0.1:{port}"
        assert kafka_local.is_running(data_dir)
        pid = int((data_dir / "kafka.pid").read_text())
        assert (data_dir / "data" / "meta.properties").is_file()
        assert "process.roles=broker,controller" in (data_dir / "server.properties").read_text()

        with pytest.raises(KafkaLocalError, match=r"already running \(pid \d+\)"):
            kafka_local.start(port=_free_port(), data_dir=data_dir)

        assert _round_trip(bootstrap) == [(b"card-1", b"ghost debit?")]
    finally:
        was_running = kafka_local.stop(data_dir)
    assert was_running
    assert _pid_gone(pid)
    assert not kafka_local.is_running(data_dir)
    assert not (data_dir / "kafka.pid").exists()
    assert kafka_local.stop(data_dir) is False


def test_a_broker_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    (data_dir / "data").mkdir(parents=True)
    (data_dir / "data" / "meta.properties").write_text(  # formatted for another node
        "version=1\nnode.id=7\ncluster.id=abcdefghijklmnopqrstuv\n"
        "directory.id=AAAAAAAAAAAAAAAAAAAAAA\n"
    )
    with pytest.raises(KafkaLocalError, match=r"exited with code 1 while starting") as caught:
        kafka_local.start(port=_free_port(), data_dir=data_dir)
    assert "Stored node id 7 doesn't match" in str(caught.value)
    assert not (data_dir / "kafka.pid").exists()


def test_a_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    (tmp_path / "kafka.pid").write_text(f"{os.getpid()}\n")  # alive, but not a broker
    assert not kafka_local.is_running(tmp_path)
    assert kafka_local.stop(tmp_path) is False
    assert not (tmp_path / "kafka.pid").exists()


def test_start_refuses_a_taken_port_before_starting_anything(
    tmp_path: Path, taken_port: int
) -> None:
    data_dir = tmp_path / "kafka"
    with pytest.raises(KafkaLocalError, match=rf"broker port {taken_port} .*already in use"):
        kafka_local.start(port=taken_port, data_dir=data_dir)
    with pytest.raises(KafkaLocalError, match=rf"controller port {taken_port} .*already in use"):
        kafka_local.start(port=_free_port(), data_dir=data_dir, controller_port=taken_port)
    assert not data_dir.exists()


def test_cli_start_on_a_taken_port_exits_3_with_the_reason_on_stderr(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = kafka_cli.main(["start", "--port", str(taken_port), "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == kafka_cli.EXIT_KAFKA == 3
    assert out == ""
    assert f"broker port {taken_port}" in err
    assert "already in use" in err


def test_cli_stop_without_a_broker_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kafka_cli.main(["stop", "--data-dir", str(tmp_path)]) == 0
    assert "no Kafka broker was running" in capsys.readouterr().err


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(KafkaLocalError, match=r"java was not found on PATH.*Java 17"):
        kafka_local.start(port=_free_port(), data_dir=tmp_path / "kafka")
    with pytest.raises(KafkaLocalError, match="java was not found"):
        kafka_local.ensure_jars(tmp_path / "lib")


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = kafka_local.find_java()
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(only_java))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(KafkaLocalError, match=r"mvn was not found on PATH.*apt-get install maven"):
        kafka_local.ensure_jars(tmp_path / "lib")


def test_java_older_than_17_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(KafkaLocalError, match=r"is Java 11: Kafka 4 brokers need Java 17"):
        kafka_local.start(port=_free_port(), data_dir=tmp_path / "kafka")


@pytest.mark.parametrize(
    ("banner", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25-ea" 2025-09-16', 25),
    ],
)
def test_java_version_banners(tmp_path: Path, banner: str, major: int) -> None:
    fake = tmp_path / "java"
    fake.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert kafka_local.java_major_version(str(fake)) == major
