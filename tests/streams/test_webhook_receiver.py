"""The receiver and one HTTP attempt, over real loopback HTTP (no Kafka).

``debitwatch webhook-receiver`` verifies signatures (401 otherwise), can fail on
purpose with a ``Retry-After``, and records each request; the sink's transport reports
statuses, headers and connection errors without raising.
"""

from __future__ import annotations

import asyncio
import base64
import doctest
import io
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from aiohttp import web

from streams.cli import main as cli
from streams.webhooks import transport
from streams.webhooks.backoff import RetryPolicy, decide
from streams.webhooks.receiver import Receiver, build_app
from streams.webhooks.signing import Signer, webhook_id
from streams.webhooks.transport import AttemptResult, new_session, post
from tests.streams.webhook_alerts import make_alert

SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"q" * 32).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_receiver(receiver: Receiver, body: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        runner = web.AppRunner(build_app(receiver), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await body(f"http://127.0.0.1:{port}/hooks/debitwatch")
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def send(url: str, secret: str, raw: bytes, message_id: str) -> AttemptResult:
    async with new_session(4) as session:
        headers = Signer(secret).headers(message_id, raw, time.time())
        return await post(session, url, raw, headers, timeout=5.0, endpoint="test")


def test_the_receiver_accepts_good_signatures_and_answers_401_to_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="debitwatch.webhooks")
    record = io.StringIO()
    receiver = Receiver(SECRET, record=record, record_bodies=True)
    alert = make_alert()
    raw = msgspec.json.encode(alert)
    results: list[AttemptResult] = []

    async def body(url: str) -> None:
        results.append(await send(url, SECRET, raw, webhook_id(alert)))
        results.append(await send(url, OTHER, raw, webhook_id(alert)))

    with_receiver(receiver, body)
    good, bad = results
    assert good.status == 204 and good.error is None
    # The status and its reason phrase, never the receiver's body: the error goes into
    # WARNING logs and the dead-letter topic. The body is logged at DEBUG only.
    assert bad.status == 401 and bad.error == "HTTP 401 Unauthorized"
    assert [r.levelno for r in caplog.records if "does not verify" in r.getMessage()] == [
        logging.DEBUG
    ]
    assert receiver.accepted == 1
    lines = [json.loads(line) for line in record.getvalue().splitlines()]
    assert [(x["answered"], x["verified"]) for x in lines] == [(204, True), (401, False)]
    assert lines[0]["webhook_id"] == webhook_id(alert)
    assert (lines[0]["alert_id"], lines[0]["status"]) == (alert.alert_id, "firing")
    assert lines[0]["body"] == raw.decode()
    # Not final: a 401 may be a secret rotation half done; retried like a 503.
    decision = decide(bad.status, bad.retry_after, bad.error, failures=1, queued_at=0.0,
                      now=1.0, policy=RetryPolicy(), rng=random.Random(0))  # fmt: skip
    assert (decision.action, decision.error) == ("retry", "HTTP 401 Unauthorized")


def test_failing_on_purpose_with_retry_after_then_recovering() -> None:
    receiver = Receiver(SECRET, fail_with=429, fail_for=1.0, retry_after="2")
    raw = msgspec.json.encode(make_alert())
    results: list[AttemptResult] = []

    async def body(url: str) -> None:
        results.append(await send(url, SECRET, raw, "msg_1"))
        await asyncio.sleep(1.1)
        results.append(await send(url, SECRET, raw, "msg_1"))

    with_receiver(receiver, body)
    throttled, accepted = results
    assert (throttled.status, throttled.retry_after) == (429, "2")
    assert accepted.status == 204


def test_errors_never_carry_the_url() -> None:
    """Some URLs are secrets (a Slack incoming webhook's path): aiohttp puts the URL in
    most of its exceptions, so only the exception's kind is kept."""
    secret_url = "http://127.0.0.1:99999/services/T000/B000/s3cr3tPath"

    async def main() -> AttemptResult:
        async with new_session(1) as session:
            return await post(session, secret_url, b"{}", {}, timeout=1.0, endpoint="chat")

    result = asyncio.run(main())
    assert result.status is None and result.error == "InvalidUrlClientError"


def test_no_answer_is_an_error_not_an_exception() -> None:
    async def main() -> AttemptResult:
        return await send(f"http://127.0.0.1:{free_port()}/", SECRET, b"{}", "msg_1")

    refused = asyncio.run(main())
    assert refused.status is None
    assert refused.error is not None and refused.error.startswith("cannot connect")


def test_a_receiver_too_slow_times_out() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(status=204)

    async def main() -> AttemptResult:
        app = web.Application()
        app.router.add_post("/", slow)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with new_session(1) as session:
                return await post(
                    session, f"http://127.0.0.1:{port}/", b"{}", {}, timeout=0.3, endpoint="slow"
                )
        finally:
            await runner.cleanup()

    result = asyncio.run(main())
    assert result.status is None and result.error == "no answer within 0.3 s"
    assert 0.25 < result.seconds < 1.5


def test_the_receiver_command_needs_a_usable_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEBITWATCH_WEBHOOK_SECRET", raising=False)
    assert cli(["webhook-receiver", "--port", str(free_port())]) == 4
    assert "DEBITWATCH_WEBHOOK_SECRET is unset or empty" in capsys.readouterr().err
    monkeypatch.setenv("DEBITWATCH_WEBHOOK_SECRET", "plain-text-password")
    assert cli(["webhook-receiver", "--port", str(free_port())]) == 4
    err = capsys.readouterr().err
    assert "whsec_" in err and "plain-text-password" not in err
    with pytest.raises(SystemExit):
        cli(["webhook-receiver", "--port", "1", "--fail-with", "200"])


def test_the_transport_examples_run() -> None:
    assert doctest.testmod(transport).failed == 0
