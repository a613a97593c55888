"""The operator's Kafka tools against a real broker: topics, produce, alerts, live simulate.

Every test gets its own topic names (the ``settings`` fixture), so they share one broker.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from kafka import KafkaProducer
from rich.console import Console

from models.truth import TRUTH_DECODER
from streams import kafka_clients
from streams.alerts_view import alert_line, export, tail
from streams.cluster import settings_env
from streams.kafka_tools_cli import add_parsers
from streams.live import Pace, run_live
from streams.produce import produce_capture
from streams.settings import Settings
from streams.simulator.cli_args import run_simulate
from streams.simulator.encode import final_watermark
from streams.simulator.generator import SimulationConfig
from streams.simulator.profiles import PROFILES
from streams.topics import check_topics, create_topics
from tests.factories import capture_line, event, watermark
from tests.kafka.conftest import free_port

IDLE = 0.3


def read_all(settings: Settings, topic: str) -> list[Any]:
    return list(kafka_clients.read_topic(settings, topic, until_idle=IDLE))


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="debitwatch")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``settings`` as DEBITWATCH_* variables, for the command-line entry points."""
    for name, value in settings_env(settings).items():
        if name.startswith("DEBITWATCH_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("DEBITWATCH_CONFIG", raising=False)
    return settings


# --- topics ------------------------------------------------------------------------------


def test_create_topics_twice_is_idempotent_and_check_is_clean(settings):
    first = create_topics(settings)
    # two inputs, the re-keyed topic, alerts, the two DLQs and the two state changelogs
    assert [outcome.created for outcome in first] == [True] * 8
    second = create_topics(settings)
    assert [outcome.created for outcome in second] == [False] * 8
    partitions = {outcome.name: outcome.partitions for outcome in second}
    assert partitions[settings.alerts_topic] == settings.partitions
    assert partitions[settings.repartition_topic] == settings.partitions
    assert partitions[settings.terminal_topic] == settings.input_partitions
    assert all(partitions[name] == settings.partitions for name in settings.changelog_topics)
    assert check_topics(settings) == []


def test_check_reports_missing_wrongly_sized_and_uncompacted_topics(settings):
    with kafka_clients.admin(settings) as client:
        client.create_topics(
            {settings.alerts_topic: {"num_partitions": 2, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    problems = check_topics(settings)
    assert sum("missing" in problem for problem in problems) == 7  # all but alerts
    alerts = [problem for problem in problems if problem.startswith(settings.alerts_topic)]
    assert len(alerts) == 2
    assert "2 partitions, expected 4" in alerts[0]
    assert "cleanup.policy" in alerts[1] and "compact" in alerts[1]


def test_topics_cli_exit_codes(env):
    assert cli(["topics", "check"]) == 1
    assert cli(["topics", "create"]) == 0
    assert cli(["topics", "create"]) == 0
    assert cli(["topics", "check"]) == 0


def test_unreachable_broker_is_one_line_and_exit_3(monkeypatch, capsys):
    monkeypatch.setenv("DEBITWATCH_BROKER", f"kafka://127.0.0.1:{free_port()}")
    monkeypatch.setattr(kafka_clients, "CONNECT_TIMEOUT", 1.0)
    started = time.monotonic()
    assert cli(["topics", "check"]) == 3
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.strip()
    assert err.startswith("debitwatch topics check: error: cannot reach Kafka at 127.0.0.1:")
    assert "\n" not in err and "Traceback" not in err


# --- produce -----------------------------------------------------------------------------


def test_produce_sends_events_as_recorded_and_watermarks_to_every_partition(settings, tmp_path):
    create_topics(settings)
    request = event("request", 0.5, stan="000777")
    debit = event("debit", 1.0, stan="000777")
    outcome = event("outcome", 2.0, stan="000777", outcome="timeout")
    broken = b'{"event_id": "ev-broken", "type": "debit", oops'  # not JSON: goes as is
    terminal_mark, issuer_mark = watermark(900), watermark(901)
    lines = [
        capture_line("terminal", request),
        capture_line("issuer", debit),
        capture_line("issuer", broken),
        b"this is not a capture line",
        capture_line("terminal", outcome),
        capture_line("terminal", terminal_mark),
        capture_line("issuer", issuer_mark),
    ]
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n\n")

    summary = produce_capture(settings, [capture])

    assert summary.lines == 7
    assert summary.events == {settings.terminal_topic: 2, settings.issuer_topic: 2}
    assert summary.watermarks == {settings.terminal_topic: 1, settings.issuer_topic: 1}
    assert summary.watermark_messages == {settings.terminal_topic: 4, settings.issuer_topic: 4}
    assert summary.not_capture_lines == 1
    assert summary.not_capture_examples == [f"{capture}:4"]
    for topic, events, mark in (
        (settings.terminal_topic, [request, outcome], terminal_mark),
        (settings.issuer_topic, [debit, broken], issuer_mark),
    ):
        records = read_all(settings, topic)
        expected = [e if isinstance(e, bytes) else msgspec.json.encode(e) for e in events]
        mark_bytes = msgspec.json.encode(mark)
        assert Counter(r.value for r in records) == Counter(expected + [mark_bytes] * 4)
        assert all(r.key is None for r in records)
        # The watermark reached every partition, after what was sent there before it.
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = max(last.get(record.partition, -1), record.offset)
        marks = {r.partition: r.offset for r in records if r.value == mark_bytes}
        assert marks == last and sorted(marks) == list(range(settings.input_partitions))


def test_produce_cli_missing_topic_and_missing_file_exit_3(env, tmp_path, capsys):
    capture = tmp_path / "c.jsonl"
    capture.write_bytes(capture_line("terminal", event("request", 0)) + b"\n")
    assert cli(["produce", str(tmp_path / "nope.jsonl")]) == 3
    assert "nope.jsonl" in capsys.readouterr().err
    assert cli(["produce", str(capture)]) == 3  # topics not created yet
    assert "does not exist" in capsys.readouterr().err
    assert cli(["topics", "create"]) == 0
    assert cli(["produce", str(capture)]) == 0
    assert "sent 1 events" in capsys.readouterr().err


# --- alerts ------------------------------------------------------------------------------


def alert(alert_id: str, status: str, amount: int = 12_550) -> bytes:
    return msgspec.json.encode(
        {
            "alert_id": alert_id,
            "kind": "unmatched_debit",
            "status": status,
            "terminal_id": "T-0001",
            "stan": "000101",
            "currency": "EUR",
            "terminal_amount_minor": amount,
            "issuer_amount_minor": amount,
            "at_risk_minor": amount,
            "detected_at": "2026-11-27T09:06:01Z",
            "probable_cause": "network_failure",
            "severity": "high",
        }
    )


def publish_alerts(settings: Settings, values: list[tuple[str, bytes]]) -> None:
    producer = kafka_clients.producer(settings)
    for key, value in values:
        producer.send(settings.alerts_topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()


def test_export_returns_every_published_alert_state(settings, tmp_path):
    create_topics(settings)
    published = [
        ("ud-1", alert("ud-1", "firing")),
        ("ud-2", alert("ud-2", "firing", 500)),
        ("ud-1", alert("ud-1", "resolved")),
    ]
    publish_alerts(settings, published)
    out = tmp_path / "alerts.jsonl"

    assert export(settings, out, until_idle=IDLE) == 3

    lines = out.read_bytes().splitlines()
    assert Counter(lines) == Counter(value for _, value in published)
    # One alert's states share a partition, so they keep their order.
    ud1 = [msgspec.json.decode(line)["status"] for line in lines if b'"ud-1"' in line]
    assert ud1 == ["firing", "resolved"]


def test_alerts_cli_export_and_tail(env, tmp_path, capsys):
    assert cli(["topics", "create"]) == 0
    publish_alerts(env, [("ud-9", alert("ud-9", "firing"))])
    out = tmp_path / "a.jsonl"
    assert cli(["alerts", "export", "-o", str(out), "--until-idle", str(IDLE)]) == 0
    assert out.read_bytes() == alert("ud-9", "firing") + b"\n"

    class CtrlCAfterTheAlert(io.StringIO):
        def write(self, text: str) -> int:
            written = super().write(text)
            if "unmatched_debit" in text:
                raise KeyboardInterrupt  # what Ctrl-C does while the tail waits
            return written

    screen = CtrlCAfterTheAlert()
    tail(env, True, Console(file=screen, width=200))  # returns on Ctrl-C
    shown = screen.getvalue()
    assert "tailing" in shown and "firing" in shown
    assert "125.50 EUR" in shown and "network_failure" in shown


def test_alert_line_is_readable_and_survives_markup_and_odd_values():
    line = alert_line(msgspec.json.decode(alert("ud-1", "firing")))
    text = Console(width=200, file=io.StringIO()).render_str(line).plain
    assert text.split() == [
        "2026-11-27T09:06:01Z", "firing", "high", "unmatched_debit", "T-0001", "000101",
        "125.50", "EUR", "at", "risk", "125.50", "EUR", "network_failure",
    ]  # fmt: skip
    odd = alert_line({"status": "[bold]x", "currency": "XXX?", "at_risk_minor": 5})
    assert "[bold]x" in Console(file=io.StringIO()).render_str(odd).plain


# --- simulate --to-kafka -----------------------------------------------------------------


def test_simulate_to_kafka_sends_paced_events_then_final_watermarks(env, tmp_path, capsys):
    create_topics(env)
    truth, copy = tmp_path / "truth.jsonl", tmp_path / "sent.jsonl"
    started = time.monotonic()
    code = run_simulate(
        ["--to-kafka", "--truth", str(truth), "-o", str(copy), "--profile", "storm",
         "--rate", "10", "--duration", "20", "--speed", "40", "--max-lateness", "40"]
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert code == 0, capsys.readouterr().err
    assert 0.4 < elapsed < 15  # ~20 s of traffic at 40x, plus a short tail
    assert "final watermark" in capsys.readouterr().err

    sent = [line for line in copy.read_bytes().splitlines() if b'"watermark"' not in line]
    for source, topic in (("terminal", env.terminal_topic), ("issuer", env.issuer_topic)):
        records = read_all(env, topic)
        mark = final_watermark(source)
        prefix = f'{{"source":"{source}","event":'.encode()
        expected = [line[len(prefix) : -1] for line in sent if line.startswith(prefix)]
        assert Counter(r.value for r in records if r.value != mark) == Counter(expected)
        assert sorted(r.partition for r in records if r.value == mark) == [0, 1, 2, 3]
    # Event time starts at the wall clock's now, not at the offline default date.
    first = msgspec.json.decode(sent[0])["event"]["occurred_at"]
    when = datetime.fromisoformat(first.replace("Z", "+00:00"))
    assert abs((when - datetime.now(UTC)).total_seconds()) < 600
    records = [TRUTH_DECODER.decode(line) for line in truth.read_bytes().splitlines()]
    assert records and all(r.alert_id for r in records)


def test_interrupted_live_run_still_sends_final_watermarks_and_no_truth(settings):
    create_topics(settings)
    config = SimulationConfig(profile=PROFILES["default"], transactions=50, rate=1.0)
    config = dataclasses.replace(config, start_ms=time.time_ns() // 1_000_000)

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    summary = run_live(settings, config, Pace(speed=1.0), sleep=ctrl_c)
    assert summary.interrupted and summary.truth is None
    assert summary.watermark_messages == 2 * settings.input_partitions
    marks = [r for r in read_all(settings, settings.issuer_topic) if b"watermark" in r.value]
    assert len(marks) == settings.input_partitions


def test_simulate_without_output_or_kafka_is_a_usage_error(tmp_path, capsys):
    assert run_simulate(["--truth", str(tmp_path / "t")]) == 2
    assert "-o/--output is required" in capsys.readouterr().err


def test_live_pace_rejects_bad_values():
    with pytest.raises(ValueError, match="--speed"):
        Pace(speed=0)
    with pytest.raises(ValueError, match="--max-lateness"):
        Pace(max_lateness=-1)


def test_read_topic_missing_topic_is_a_broker_error(settings):
    with pytest.raises(kafka_clients.BrokerError, match="does not exist"):
        read_all(settings, "no-such-topic-" + settings.app_id)


def test_export_cli_writes_nothing_when_the_topic_is_missing(env, tmp_path, capsys):
    out = tmp_path / "never.jsonl"
    assert cli(["alerts", "export", "-o", str(out)]) == 3
    assert not out.exists()
    assert "does not exist" in capsys.readouterr().err


def test_config_file_problems_exit_4(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka]\npartitoins = 3\n")
    assert cli(["topics", "check", "--config", str(bad)]) == 4
    assert "partitoins" in capsys.readouterr().err


def test_settings_from_config_file_reach_the_tools(settings, tmp_path, monkeypatch):
    config = tmp_path / "dw.toml"
    config.write_text(
        f'[kafka]\nbroker = "{settings.broker}"\nalerts_topic = "{settings.alerts_topic}"\n'
        f'terminal_topic = "{settings.terminal_topic}"\nissuer_topic = "{settings.issuer_topic}"\n'
        f'dlq_topic = "{settings.dlq_topic}"\napp_id = "{settings.app_id}"\n'
    )
    for name in ("BROKER", "APP_ID", "ALERTS_TOPIC", "CONFIG"):
        monkeypatch.delenv(f"DEBITWATCH_{name}", raising=False)
    assert cli(["topics", "create", "--config", str(config)]) == 0
    assert check_topics(settings) == []


def test_end_offsets_with_a_list_of_brokers(settings):
    create_topics(settings)
    twice = dataclasses.replace(settings, broker=f"{settings.broker},{settings.broker}")
    assert kafka_clients.end_offsets(twice, settings.alerts_topic) == {
        p: 0 for p in range(settings.partitions)
    }


def test_export_skips_alerts_of_aborted_transactions(settings, tmp_path):
    """Exactly-once workers write alerts in transactions; an aborted batch is not output."""
    create_topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, transactional_id=f"{settings.app_id}-test"
    )
    producer.init_transactions()
    for status, commit in (("firing", False), ("resolved", True)):
        producer.begin_transaction()
        producer.send(settings.alerts_topic, key=b"ud-1", value=alert("ud-1", status))
        producer.flush()  # in the log, then aborted or committed
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()
    out = tmp_path / "alerts.jsonl"
    assert export(settings, out, until_idle=IDLE) == 1
    assert out.read_bytes() == alert("ud-1", "resolved") + b"\n"
