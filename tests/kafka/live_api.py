"""A live run for the HTTP API tests: a simulated capture through real workers on the
session's broker, and a small HTTP client for their web ports (docs/api.md).

Shared by test_api.py, test_triage_page.py and test_openapi.py. The capture's closing
watermarks are moved from 9999 to an hour after its last event: every window closes,
but no transaction reaches the end of its retention, so their states are still there to
be shown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from models.alerts import Alert
from models.final_states import FinalStates
from models.instants import format_micros, micros_of
from streams.cluster import WorkerProcess
from streams.produce import produce_capture
from streams.settings import Settings
from streams.topics import create_topics
from tests.kafka.pipeline import read_alerts, simulate, wait, workers
from tests.kafka.waiting import wait_consuming

TOKEN = "test-token-6f1d2c"  # not a secret: a throwaway value for these workers only


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass(frozen=True)
class Api:
    """One worker's web port, asked over real HTTP (urllib: no client magic)."""

    base: str
    token: str | None = TOKEN

    def get(self, path: str, *, token: str | None = "default", timeout: float = 30) -> Reply:
        headers = {"Accept": "application/json"}
        sent = self.token if token == "default" else token
        if sent is not None:
            headers["Authorization"] = f"Bearer {sent}"
        request = urllib.request.Request(self.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    def ok(self, path: str) -> Any:
        reply = self.get(path)
        assert reply.status == 200, (path, reply.status, reply.body[:500])
        return reply.json()

    def all_alerts(self, query: str) -> tuple[list[dict[str, Any]], int]:
        """Every page of ``/alerts?<query>``, following ``next``; (alerts, pages)."""
        found: list[dict[str, Any]] = []
        path: str | None = f"/alerts?{query}"
        pages = 0
        while path is not None:
            page = self.ok(path)
            pages += 1
            assert page["count"] == len(page["alerts"])
            found.extend(page["alerts"])
            path = page["next"]
            assert pages < 1_000, "the next links never end"
        return found, pages


@dataclasses.dataclass
class LiveRun:
    settings: Settings
    workers: list[WorkerProcess]
    apis: list[Api]
    alerts: list[Alert]  # every record of the alerts topic, as published

    @property
    def final(self) -> dict[str, Alert]:
        return FinalStates.of(self.alerts).last


def closing_capture(source: Path, folder: Path) -> Path:
    """``source`` with its 9999 watermarks moved to an hour after its last event."""
    lines = source.read_bytes().splitlines()
    latest = 0
    for line in lines:
        event = json.loads(line)["event"]
        if event.get("type") != "watermark":
            latest = max(latest, micros_of(event["occurred_at"]))
    close = format_micros(latest + int(timedelta(hours=1).total_seconds() * 1_000_000))
    out = folder / "closing-capture.jsonl"
    out.write_bytes(
        b"".join(line.replace(b"9999-12-31T23:59:59Z", close.encode()) + b"\n" for line in lines)
    )
    return out


@contextlib.contextmanager
def live_run(
    settings: Settings,
    folder: Path,
    *,
    count: int,
    transactions: int,
    seed: int,
    token: str | None = TOKEN,
) -> Iterator[LiveRun]:
    """``count`` workers (API token ``token``) that have processed a simulated capture.

    The workers join and settle before the capture is produced: a group that rebalances
    while one member has already processed everything can leave the offsets
    uncommitted until new input arrives, and this run has no new input.
    """
    folder.mkdir(parents=True, exist_ok=True)
    capture = closing_capture(simulate(folder, transactions, seed), folder)
    create_topics(settings)
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            # The workers read their settings from the environment they start with.
            patch.delenv("DEBITWATCH_API_TOKEN_FILE", raising=False)
            if token is None:
                patch.delenv("DEBITWATCH_API_TOKEN", raising=False)
            else:
                patch.setenv("DEBITWATCH_API_TOKEN", token)
            running = stack.enter_context(workers(settings, folder / "logs", count=count))
        wait_consuming(settings, running)
        produce_capture(settings, [capture])
        wait(settings, running, timeout=300)
        alerts = read_alerts(settings)
        apis = [Api(f"http://127.0.0.1:{w.settings.web_port}", token) for w in running]
        for api in apis:
            wait_for_index(api, len(FinalStates.of(alerts).last))
        yield LiveRun(settings, running, apis, alerts)


def wait_for_index(api: Api, expected: int, timeout: float = 60) -> None:
    """Until the worker's alert index has read the whole topic (``expected`` alerts)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = api.get("/alerts?limit=1")
        if reply.status == 200:
            page = reply.json()
            if page["index"]["complete"] and page["total"] == expected:
                return
        assert time.monotonic() < deadline, f"{api.base}: index not complete: {reply.body[:300]!r}"
        time.sleep(0.5)


def transaction_path(alert: dict[str, Any] | Alert) -> str:
    """``/transactions/...`` of an alert (a decoded JSON object or an :class:`Alert`)."""
    fields = alert if isinstance(alert, dict) else msgspec.to_builtins(alert)
    quote = urllib.parse.quote
    return (
        f"/transactions/{quote(fields['terminal_id'], safe='')}/{fields['stan']}/"
        f"{quote(fields['transmitted_at'], safe='')}"
    )
