"""Signed webhooks from real workers to real receivers on loopback (docs/webhooks.md).

Every receiver is a ``debitwatch webhook-receiver`` process that verifies signatures
with the ``standardwebhooks`` library and records each request it gets; every worker is
a ``debitwatch worker`` process on the session's Kafka broker. Short backoffs (200 ms to
2 s) keep the retries quick; the decisions are the production ones.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from models.alerts import Alert
from models.final_states import ALERT_DECODER
from streams.cluster import WorkerProcess
from streams.kafka_clients import admin, read_topic
from streams.settings import Settings
from streams.webhooks.config import changelog_topic, dlq_topic, load_endpoints
from streams.webhooks.dead_letter import DEAD_LETTER_DECODER, WebhookDeadLetter
from streams.webhooks.signing import webhook_id
from tests.kafka.conftest import free_port
from tests.kafka.pipeline import prepare, read_alerts, start_worker, wait

SECRET = "whsec_" + base64.b64encode(b"debitwatch webhook test secret 1").decode()
CHAT_SECRET = "whsec_" + base64.b64encode(b"debitwatch webhook chat secret 2").decode()
OTHER = "whsec_" + base64.b64encode(b"somebody else's secret, not ours").decode()


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four hours of a slow fleet (300 sales, one every 20 s) with many ghost debits, most
    of them given back an hour or more later: firing, resolved and escalated states."""
    folder = tmp_path_factory.mktemp("webhooks")
    path = folder / "capture.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--transactions", "300",
         "--rate", "0.05", "--profile", "default", "--seed", "3",
         "--set", "resolved_late_share=0.6", "--set", "network_failure=0.03",
         "-o", str(path), "--truth", str(folder / "truth.jsonl")],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


class Receiver:
    """A ``debitwatch webhook-receiver`` process and the requests it recorded."""

    def __init__(self, log_dir: Path, name: str, *args: str, secret: str = SECRET) -> None:
        self.name = name
        self.port = free_port()
        self.record = log_dir / f"{name}.requests.jsonl"
        self._args = args
        self._secret = secret
        self._log_path = log_dir / f"{name}.receiver.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/debitwatch/{self.name}"

    def start(self, args: tuple[str, ...] | None = None) -> Receiver:
        """Start (again: same port, same record file); ``args`` replace the first ones."""
        self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "webhook-receiver", "--host", "127.0.0.1",
             "--port", str(self.port), "--record", str(self.record), "--record-bodies",
             *(self._args if args is None else args)],
            env={**os.environ, "DEBITWATCH_WEBHOOK_SECRET": self._secret},
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        return self

    def wait_listening(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None and self._process.poll() is None, self.log_tail()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"receiver {self.name} not listening after {timeout} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def answered(self, status: int) -> set[str]:
        return {r["webhook_id"] for r in self.requests() if r["answered"] == status}

    def log_tail(self) -> str:
        return self._log_path.read_text(errors="replace")[-3000:] if self._log_path.exists() else ""


@dataclasses.dataclass(frozen=True)
class State:
    """One alert state on the alerts topic, as a webhook receiver should get it."""

    alert_id: str
    webhook_id: str
    status: str
    alert: Alert


def states(
    alerts: Iterable[Alert], accepts: Callable[[Alert], bool] = lambda _: True
) -> list[State]:
    """The distinct states in topic order (each alert's records are on one partition)."""
    seen: set[str] = set()
    found: list[State] = []
    for alert in alerts:
        message_id = webhook_id(alert)
        if accepts(alert) and message_id not in seen:
            seen.add(message_id)
            found.append(State(alert.alert_id, message_id, str(alert.status), alert))
    return found


def metrics(worker: WorkerProcess) -> dict[str, float]:
    """The worker's webhook series, ``name`` or ``name{outcome}`` -> value."""
    values: dict[str, float] = {}
    for sample in worker.metrics():
        if "webhook" in sample.name:
            outcome = sample.labels.get("outcome")
            values[f"{sample.name}{{{outcome}}}" if outcome else sample.name] = sample.value
    return values


def metric(worker: WorkerProcess, name: str) -> float:
    try:
        return metrics(worker).get(name, -1.0)
    except OSError:  # the web server not up yet
        return -1.0


def wait_until(check: Callable[[], bool], what: str, workers: list[WorkerProcess],
               timeout: float = 90.0) -> float:  # fmt: skip
    started = time.monotonic()
    while not check():
        for worker in workers:
            assert worker.alive, f"{worker.name} exited:\n{worker.log_tail()}"
        waited = time.monotonic() - started
        assert waited < timeout, f"{what}: not after {timeout} s"
        time.sleep(0.3)
    return time.monotonic() - started


def dead_letters(settings: Settings) -> list[WebhookDeadLetter]:
    return [
        DEAD_LETTER_DECODER.decode(record.value)
        for record in read_topic(settings, dlq_topic(settings), until_idle=0.5)
    ]


def print_counts(title: str, receiver: Receiver, expected: list[State]) -> None:
    """Per webhook-id: the requests the receiver got and how it answered them."""
    by_id: dict[str, list[int]] = collections.defaultdict(list)
    for request in receiver.requests():
        by_id[request["webhook_id"]].append(request["answered"])
    print(f"\n{title}: {len(expected)} alert states, {sum(map(len, by_id.values()))} requests")
    print(f"  {'webhook-id':38} {'status':9} requests  answers")
    for state in expected:
        answers = by_id.get(state.webhook_id, [])
        shown = " ".join(map(str, answers))
        status = "escalated" if state.alert.deadline_passed else state.status
        print(f"  {state.webhook_id:38} {status:9} {len(answers):8}  {shown}")
    histogram = collections.Counter(len(by_id.get(s.webhook_id, [])) for s in expected)
    print("  requests per webhook-id: " + ", ".join(
        f"{n} x{count}" for n, count in sorted(histogram.items())
    ))  # fmt: skip


def test_every_alert_state_is_delivered_once_across_an_outage_and_a_worker_kill(
    settings: Settings, tmp_path: Path, capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP 503, then connection refused, and the worker killed (SIGKILL) during the
    retries and replaced by a new one with an empty state directory: after recovery every
    alert state on the topic was delivered, acknowledged once, in order per alert.

    A second endpoint (from a ``[[webhooks]]`` file, beside the one from the environment)
    answers 410 Gone: disabled at once, and still disabled on the new worker, which can
    only know it from the retry table's changelog.
    """
    # The group waits this long for the killed worker before its replacement takes over
    # (the broker's minimum session timeout).
    settings = dataclasses.replace(settings, session_timeout=6.0)
    receiver = Receiver(tmp_path, "ops", "--fail-with", "503")
    gone = Receiver(tmp_path, "gone", "--fail-with", "410")
    for name, value in {
        "URL": receiver.url, "SECRET": SECRET, "BACKOFF_INITIAL": "200ms",
        "BACKOFF_MAX": "2s",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"DEBITWATCH_WEBHOOK_{name}", value)
    config = tmp_path / "webhooks.toml"
    config.write_text(
        f'[[webhooks]]\nname = "gone"\nurl = "{gone.url}"\nsecret_env = "DW_TEST_SECRET"\n'
        "concurrency = 1\n"
    )
    monkeypatch.setenv("DEBITWATCH_WEBHOOKS_CONFIG", str(config))
    monkeypatch.setenv("DW_TEST_SECRET", SECRET)
    receiver.start()
    gone.start()
    prepare(settings, capture)
    first = start_worker(settings, tmp_path)
    running = [first]
    try:
        took = wait(settings, running, timeout=180)  # every alert is on the topic
        print(f"\nworker caught up in {took:.1f} s")
        expected = states(read_alerts(settings))
        wanted = {s.webhook_id for s in expected}
        assert len(expected) >= 20 and {s.status for s in expected} == {"firing", "resolved"}
        assert any(s.alert.deadline_passed for s in expected)  # an escalation too

        # Only the oldest undelivered state of an alert is ever attempted: the states
        # behind it (its resolution, its escalation) wait for it to be delivered.
        heads = {next(s.webhook_id for s in expected if s.alert_id == a)
                 for a in {s.alert_id for s in expected}}  # fmt: skip
        assert len(heads) < len(wanted)

        # 1. The receiver answers 503 to every alert's first state.
        wait_until(lambda: receiver.answered(503) >= heads, "every alert refused with 503",
                   running)  # fmt: skip
        # 2. The receiver is gone: connection refused.
        receiver.stop()
        retried = metric(first, "debitwatch_webhook_deliveries_total{retried}")
        wait_until(
            lambda: metric(first, "debitwatch_webhook_deliveries_total{retried}")
            >= retried + len(heads),
            "retries meeting a refused connection", running,
        )  # fmt: skip
        # 3. The worker dies mid-retries; a new one (empty state directory: everything
        #    comes from Kafka) takes over and keeps failing to connect for a while.
        first.kill()
        second = start_worker(settings, tmp_path)
        running = [second]
        took = wait_until(
            lambda: metric(second, "debitwatch_webhook_pending_deliveries") == len(expected)
            and metric(second, "debitwatch_webhook_deliveries_total{retried}") >= len(heads)
            and metric(second, "debitwatch_webhook_endpoints_disabled") == 1,
            "the new worker restoring every pending state and retrying it", running, timeout=120,
        )  # fmt: skip
        print(f"the new worker restored {len(expected)} pending states in {took:.1f} s")
        assert receiver.answered(204) == set()
        # 4. The receiver is back.
        receiver.start(args=())  # healthy
        took = wait_until(lambda: receiver.answered(204) >= wanted, "every state delivered",
                          running)  # fmt: skip
        print(f"every state delivered {took:.1f} s after the receiver came back")
        wait_until(
            lambda: metric(second, "debitwatch_webhook_pending_deliveries") == 0,
            "nothing pending", running,
        )  # fmt: skip
        final = metrics(second)
    finally:
        for worker in running:
            worker.stop()
        receiver.stop()
        gone.stop()

    print_counts("webhook deliveries per webhook-id (503, refused, kill -9, back)", receiver,
                 expected)  # fmt: skip
    requests = receiver.requests()
    assert all(r["verified"] for r in requests)
    acks = collections.Counter(r["webhook_id"] for r in requests if r["answered"] == 204)
    # None lost, none acknowledged twice: a redelivery only where no 2xx was ever given.
    assert set(acks) == wanted
    assert set(acks.values()) == {1}
    for state in expected:
        answers = [r["answered"] for r in requests if r["webhook_id"] == state.webhook_id]
        if state.webhook_id in heads:
            assert answers[-1] == 204 and set(answers[:-1]) == {503}  # met the outage
        else:
            assert answers == [204]  # never attempted before its predecessor was delivered
    # Ordering: per alert, the receiver acknowledged its states in the topic's order, so
    # never a resolved before its firing.
    delivered_order: dict[str, list[str]] = collections.defaultdict(list)
    for request in requests:
        if request["answered"] == 204:
            delivered_order[request["alert_id"]].append(request["webhook_id"])
    topic_order: dict[str, list[str]] = collections.defaultdict(list)
    for state in expected:
        topic_order[state.alert_id].append(state.webhook_id)
    assert delivered_order == topic_order
    for alert_id, ids in topic_order.items():
        statuses = [next(s.status for s in expected if s.webhook_id == i) for i in ids]
        if "resolved" in statuses:
            assert statuses.index("firing") < statuses.index("resolved"), alert_id
    assert final["debitwatch_webhook_deliveries_total{dead_lettered}"] == 0
    assert final["debitwatch_webhook_deliveries_total{delivered}"] == len(expected)
    assert final["debitwatch_webhook_endpoints_disabled"] == 1
    # 410: one request, then none, across the restart too; its states are dead letters
    # (at least once each: a state the killed worker had not checkpointed may repeat).
    assert [r["answered"] for r in gone.requests()] == [410]
    letters = dead_letters(settings)
    assert {d.endpoint for d in letters} == {"gone"}
    assert {d.webhook_id for d in letters} == wanted
    assert {d.reason for d in letters} == {"endpoint_disabled"}


def limit_record_size(settings: Settings, topic: str, max_bytes: int | None) -> None:
    """Make the broker refuse record batches larger than ``max_bytes`` on ``topic`` (None:
    back to the broker's default)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": max_bytes})
    with admin(settings) as client:
        if max_bytes is None:
            client.reset_configs([resource])
        else:
            client.alter_configs([resource])


def test_a_retry_state_kafka_refuses_stops_the_worker_and_loses_no_alert(
    settings: Settings, tmp_path: Path, capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry table's changelog refuses the queue records (a batch above the topic's
    ``max.message.bytes``; an ``~offset`` checkpoint alone would still fit). Faust's
    commit would not notice (``producer.flush()`` does not raise for a refused record):
    the worker itself must stop before any of those alerts is committed, attempt none
    of them, and checkpoint nothing past them. Once the topic takes them again, a new
    worker delivers every state, once."""
    receiver = Receiver(tmp_path, "ops")
    for name, value in {"URL": receiver.url, "SECRET": SECRET}.items():
        monkeypatch.setenv(f"DEBITWATCH_WEBHOOK_{name}", value)
    monkeypatch.delenv("DEBITWATCH_WEBHOOKS_CONFIG", raising=False)
    receiver.start()
    prepare(settings, capture)
    limit_record_size(settings, changelog_topic(settings), 200)
    first = start_worker(settings, tmp_path)
    running = [first]
    try:
        receiver.wait_listening()
        started = time.monotonic()
        while first.alive:
            assert time.monotonic() - started < 180, "the worker did not stop"
            time.sleep(0.3)
        print(f"\nthe worker stopped {time.monotonic() - started:.1f} s after its start")
        log = first.log_path.read_text(errors="replace")
        assert "MessageSizeTooLarge" in log and "stopping the worker" in log, log
        # Not one attempt: a state is attempted only once its checkpoint is acknowledged.
        assert receiver.requests() == []

        limit_record_size(settings, changelog_topic(settings), None)
        second = start_worker(settings, tmp_path)
        running = [second]
        wait(settings, running, timeout=180)
        expected = states(read_alerts(settings))
        wanted = {s.webhook_id for s in expected}
        assert len(expected) >= 20
        took = wait_until(lambda: receiver.answered(204) >= wanted, "every state delivered",
                          running)  # fmt: skip
        print(f"the second worker delivered all {len(wanted)} states in {took:.1f} s")
    finally:
        first.stop()
        for worker in running:
            worker.stop()
        receiver.stop()
    acks = collections.Counter(r["webhook_id"] for r in receiver.requests())
    assert set(acks) == wanted and set(acks.values()) == {1}


CONFIG = """
[[webhooks]]
name = "chat"
url = "{chat}"
secret_env = "DW_TEST_CHAT_SECRET"
format = "slack"
statuses = ["firing"]
min_severity = "high"
backoff_initial = "200ms"
backoff_max = "2s"

[[webhooks]]
name = "throttled"
url = "{throttled}"
secret_env = "DW_TEST_SECRET"
kinds = ["unmatched_debit"]
backoff_initial = "100ms"
backoff_max = "5s"

[[webhooks]]
name = "gone"
url = "{gone}"
secret_env = "DW_TEST_SECRET"
concurrency = 1

[[webhooks]]
name = "wrong-secret"
url = "{wrong}"
secret_env = "DW_TEST_SECRET"
max_age = "2s"
backoff_initial = "100ms"
backoff_max = "500ms"

[[webhooks]]
name = "short"
url = "{short}"
secret_env = "DW_TEST_SECRET"
max_age = "1s"
backoff_initial = "100ms"
backoff_max = "500ms"
"""


def test_filters_slack_retry_after_gone_refusals_and_dead_letters(
    settings: Settings, tmp_path: Path, capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five endpoints on one worker, each receiver misbehaving its own way; one endpoint's
    trouble never holds up another's deliveries."""
    receivers = {
        "chat": Receiver(tmp_path, "chat", secret=CHAT_SECRET),
        "throttled": Receiver(tmp_path, "throttled", "--fail-with", "429", "--retry-after", "2",
                              "--fail-for", "3"),
        "gone": Receiver(tmp_path, "gone", "--fail-with", "410"),
        "wrong": Receiver(tmp_path, "wrong", secret=OTHER),  # verifies with another secret
        "short": Receiver(tmp_path, "short", "--fail-with", "503"),
    }  # fmt: skip
    config = tmp_path / "webhooks.toml"
    config.write_text(CONFIG.format(**{name: r.url for name, r in receivers.items()}))
    monkeypatch.setenv("DEBITWATCH_WEBHOOKS_CONFIG", str(config))
    monkeypatch.setenv("DW_TEST_SECRET", SECRET)
    monkeypatch.setenv("DW_TEST_CHAT_SECRET", CHAT_SECRET)
    monkeypatch.delenv("DEBITWATCH_WEBHOOK_URL", raising=False)
    endpoints = {e.name: e for e in load_endpoints()}
    for receiver in receivers.values():
        receiver.start()
    prepare(settings, capture)
    worker = start_worker(settings, tmp_path)
    running = [worker]
    try:
        for receiver in receivers.values():
            receiver.wait_listening()
        print(f"\nworker caught up in {wait(settings, running, timeout=180):.1f} s")
        alerts = read_alerts(settings)
        every = states(alerts)
        chat = states(alerts, endpoints["chat"].accepts)
        throttled = states(alerts, endpoints["throttled"].accepts)
        assert 0 < len(chat) < len(every) and 0 < len(throttled) < len(every)

        def settled() -> bool:
            letters = collections.Counter(d.endpoint for d in dead_letters(settings))
            return (
                receivers["chat"].answered(204) >= {s.webhook_id for s in chat}
                and receivers["throttled"].answered(204) >= {s.webhook_id for s in throttled}
                and all(letters[name] >= len(every) for name in ("gone", "wrong-secret", "short"))
            )

        took = wait_until(settled, "deliveries and dead letters", running)
        print(f"five endpoints settled {took:.1f} s after the last alert")
        counts = metrics(worker)
    finally:
        for w in running:
            w.stop()
        for receiver in receivers.values():
            receiver.stop()
    letters = dead_letters(settings)

    # Filters and the Slack format: exactly the matching states, each signed with the
    # chat endpoint's own secret (and not verifiable with another).
    chat_requests = receivers["chat"].requests()
    assert sorted(r["webhook_id"] for r in chat_requests) == sorted(s.webhook_id for s in chat)
    for request in chat_requests:
        assert request["verified"] and request["text"].startswith(("FIRING", "ESCALATED"))
        assert "card_token" not in request["body"]
        assert (
            Webhook(CHAT_SECRET).verify(request["body"], request["headers"], json_parse=False)
            is None
        )
        with pytest.raises(WebhookVerificationError):
            Webhook(OTHER).verify(request["body"], request["headers"])

    # Retry-After: 2 is honoured: the next attempt of a throttled state comes >= 2 s later.
    throttled_requests = receivers["throttled"].requests()
    gaps = []
    for state in throttled:
        mine = [r for r in throttled_requests if r["webhook_id"] == state.webhook_id]
        for before, after in itertools.pairwise(mine):
            if before["answered"] == 429:
                gaps.append(after["at"] - before["at"])
    assert gaps and min(gaps) >= 2.0, gaps
    assert receivers["throttled"].answered(204) == {s.webhook_id for s in throttled}

    # 410: one request (concurrency 1), then no more; every state dead-lettered instead
    # (a restart keeps it disabled: the first test).
    assert [r["answered"] for r in receivers["gone"].requests()] == [410]
    gone = [d for d in letters if d.endpoint == "gone"]
    assert sorted(d.webhook_id for d in gone) == sorted(s.webhook_id for s in every)
    assert {d.reason for d in gone} == {"endpoint_disabled"}

    # Each alert's first state is attempted at once; the states behind it reach the
    # head of their queue only after it is settled, past their own (short) horizon,
    # which counts from when they were queued: one attempt each.
    heads = {next(s.webhook_id for s in every if s.alert_id == a)
             for a in {s.alert_id for s in every}}  # fmt: skip

    # A receiver that cannot verify the signature answers 401: retried like any other
    # failure (a secret rotation half done looks the same), until its max_age.
    wrong_requests = receivers["wrong"].requests()
    assert {(r["verified"], r["answered"]) for r in wrong_requests} == {(False, 401)}
    refused = [d for d in letters if d.endpoint == "wrong-secret"]
    assert sorted(d.webhook_id for d in refused) == sorted(s.webhook_id for s in every)
    assert {d.reason for d in refused} == {"retries_exhausted"}
    assert all(d.attempts >= (2 if d.webhook_id in heads else 1) for d in refused)
    # The status and its reason phrase: never the receiver's body.
    assert {d.last_error for d in refused} == {"HTTP 401 Unauthorized"}
    assert len(wrong_requests) == sum(d.attempts for d in refused)

    # After the last retry (max_age 1 s), a dead letter with the alert as published.
    exhausted = [d for d in letters if d.endpoint == "short"]
    assert sorted(d.webhook_id for d in exhausted) == sorted(s.webhook_id for s in every)
    by_id = {s.webhook_id: s.alert for s in every}
    for letter in exhausted:
        assert letter.reason == "retries_exhausted"
        assert letter.attempts >= (2 if letter.webhook_id in heads else 1)
        assert letter.last_error == "HTTP 503 Service Unavailable"
        assert ALERT_DECODER.decode(letter.alert) == by_id[letter.webhook_id]
        assert letter.first_attempt_at and letter.last_attempt_at
    assert len(receivers["short"].requests()) == sum(d.attempts for d in exhausted)

    outcome = "debitwatch_webhook_deliveries_total{{{}}}".format
    assert counts[outcome("delivered")] == len(chat) + len(throttled)
    assert counts[outcome("disabled")] == len(every)
    assert counts[outcome("dead_lettered")] == 2 * len(every)
    assert counts[outcome("filtered")] == 2 * len(every) - len(chat) - len(throttled)
    assert counts[outcome("retried")] >= 2 * len(heads)
    assert counts["debitwatch_webhook_endpoints_disabled"] == 1
    assert counts["debitwatch_webhook_pending_deliveries"] == 0
    assert counts["debitwatch_webhook_delivery_duration_seconds_count"] == sum(
        len(r.requests()) for r in receivers.values()
    )
