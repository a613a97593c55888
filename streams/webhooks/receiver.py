"""A real HTTP receiver of alert webhooks that checks Standard Webhooks signatures.

``debitwatch webhook-receiver`` (streams/webhooks/receiver_cli.py) runs it: the
docker-compose demo's receiver and the tests' (docs/webhooks.md). Every POST (any path)
is verified with the ``standardwebhooks`` library: a bad or missing signature, or a
timestamp more than five minutes off, is answered 401. While ``--fail-with`` is in force
(for ``--fail-for`` seconds from the first request, or always), verified requests get that
status instead of 204 (``--retry-after`` adds the header), to rehearse a receiver that
is down, throttling (429) or gone (410). Each accepted alert is printed as one line;
``--record`` appends one JSON line per request: the ``webhook-id``, alert id, status,
the HTTP answer and the time, plus the raw headers and body with ``--record-bodies``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import IO, Any

from aiohttp import web
from rich.console import Console
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from streams.alerts_view import alert_line


class Receiver:
    """The request handler and its bookkeeping (one per server)."""

    def __init__(
        self,
        secret: str,
        *,
        fail_with: int | None = None,
        fail_for: float | None = None,
        retry_after: str | None = None,
        record: IO[str] | None = None,
        record_bodies: bool = False,
        console: Console | None = None,
    ) -> None:
        self._webhook = Webhook(secret)
        self._fail_with = fail_with
        self._fail_for = fail_for
        self._fail_until: float | None = None  # set by the first verified request
        self._retry_after = retry_after
        self._record = record
        self._record_bodies = record_bodies
        self._console = console or Console(highlight=False)
        self.accepted = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        arrived = time.time()
        try:
            payload = self._webhook.verify(raw, headers)
        except (WebhookVerificationError, ValueError) as error:
            self._log(arrived, headers, raw, None, 401, f"signature: {error}")
            return web.Response(status=401, text="webhook signature does not verify\n")
        status = self._failing()
        self._log(arrived, headers, raw, payload, status or 204, None)
        if status is not None:
            extra = {"Retry-After": self._retry_after} if self._retry_after else None
            return web.Response(status=status, text="failing on purpose\n", headers=extra)
        self.accepted += 1
        self._show(payload, headers.get("webhook-id", "?"))
        return web.Response(status=204)

    def _failing(self) -> int | None:
        """The status to fail with now: ``--fail-for`` counts from the first request, so an
        outage covers the first deliveries however long the workers took to start."""
        if self._fail_with is None or self._fail_for is None:
            return self._fail_with
        now = time.monotonic()
        if self._fail_until is None:
            self._fail_until = now + self._fail_for
        return self._fail_with if now < self._fail_until else None

    def _show(self, payload: Any, message_id: str) -> None:
        if isinstance(payload, dict) and "alert_id" in payload:
            self._console.print(f"{alert_line(payload)}  [dim]{message_id}[/]")
        elif isinstance(payload, dict) and "text" in payload:  # the Slack format
            self._console.print(f"{payload['text']}  [dim]{message_id}[/]", markup=False)
        else:
            self._console.print(f"(not an alert)  {message_id}", markup=False)

    def _log(
        self,
        arrived: float,
        headers: dict[str, str],
        raw: bytes,
        payload: Any,
        answered: int,
        error: str | None,
    ) -> None:
        if self._record is None:
            return
        alert = payload if isinstance(payload, dict) else {}
        line: dict[str, Any] = {
            "at": arrived,
            "webhook_id": headers.get("webhook-id"),
            "alert_id": alert.get("alert_id"),
            "status": alert.get("status"),
            "deadline_passed": alert.get("deadline_passed"),
            "answered": answered,
            "verified": error is None,
            "error": error,
        }
        if self._record_bodies:
            line["headers"] = {k: v for k, v in headers.items() if k.startswith("webhook-")}
            line["body"] = raw.decode("utf-8", errors="replace")
            if "text" in alert:
                line["text"] = alert["text"]
        self._record.write(json.dumps(line) + "\n")
        self._record.flush()


def build_app(receiver: Receiver) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/{tail:.*}", receiver.handle)
    return app


async def serve(receiver: Receiver, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(build_app(receiver), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"webhook-receiver: listening on http://{host}:{port}/", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
