"""``install_api``: the HTTP API and the triage page on the worker's web port.

* ``GET /alerts``: alerts in their last state, filtered, sorted, one page per cursor;
* ``GET /alerts/{alert_id}``: one alert and its state changes;
* ``GET /transactions/{terminal_id}/{stan}/{transmitted_at}``: a transaction's timeline
  and verdicts, from the worker that owns it;
* ``GET /triage`` and ``GET /triage/{asset}``: the triage page (HTML, JS, CSS);
* ``GET /openapi.yaml``: the API's description (the packaged copy of docs/openapi.yaml).

Faust's web server (aiohttp) serves them next to ``/metrics``, ``/healthz`` and
``/readyz`` (streams/worker/web.py). Data answers need the bearer token when one is
configured (streams/api/auth.py); the page's files and the description do not (code,
no data). Errors are JSON ``{"error": ..., "detail": ...}``. docs/api.md is the guide.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, cast
from urllib.parse import quote

import faust
import msgspec
from aiohttp import web as aio
from faust import web

from models.alerts import Alert
from models.transaction import Txn
from streams.api.alert_feed import follow_alerts
from streams.api.alert_index import AlertIndex, StateChange
from streams.api.auth import authorized, challenge
from streams.api.config import ApiConfig, api_config_from_env
from streams.api.peers import PeerAnswer, ask_peers, own_url, peer_urls
from streams.api.queries import QueryError, next_link, parse_alert_query, select
from streams.api.timeline import describe, transaction_key_of
from streams.settings import Settings
from streams.worker.partition_state import PartitionState

log = logging.getLogger("debitwatch.api")
_ENCODER: Final = msgspec.json.Encoder()
JSON: Final = "application/json"
# The triage page's files: name -> content type. Only these are served from static/.
ASSETS: Final[dict[str, str]] = {
    "app.js": "text/javascript",
    "style.css": "text/css",
}
# No third-party origin at all: the page works offline, behind any proxy, and an
# injected script from elsewhere could not run.
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Alerts and timelines name cards and merchants: no shared cache may keep them.
_DATA_HEADERS: Final = {"Cache-Control": "no-store"}
LOCAL_PARAMETER: Final = "local"


class IndexStatus(msgspec.Struct, kw_only=True):
    """How much of the alerts topic this worker's index holds (alert_index.py)."""

    complete: bool  # read to the end the topic had when the worker started
    alerts: int
    evicted: int  # forgotten to stay within max_alerts: older alerts may be missing
    unreadable: int


class AlertList(msgspec.Struct, kw_only=True):
    alerts: list[Alert]
    count: int
    total: int
    next: str | None
    index: IndexStatus


class AlertDetail(msgspec.Struct, kw_only=True):
    alert: Alert
    history: list[StateChange]
    transaction: str | None
    index: IndexStatus


def install_api(app: faust.App, settings: Settings, config: ApiConfig | None = None) -> AlertIndex:
    """Register the API's pages and the alert index's feed on ``app``; the index.

    Reads ``DEBITWATCH_API_*`` (streams/api/config.py) unless ``config`` is given, so a
    bad value stops the worker at start with a ConfigError that says which.
    """
    config = config or api_config_from_env()
    index = AlertIndex(config.max_alerts, config.max_history)
    static = importlib.resources.files("streams.api") / "static"

    @app.task  # type: ignore[untyped-decorator]
    async def alert_index_feed() -> None:
        await follow_alerts(settings, index)

    def denied(request: aio.Request) -> Any:
        header = request.headers.get("Authorization")
        if authorized(header, config.token):
            return None
        detail = (
            "the bearer token is not valid"
            if header
            else "send the API token: 'Authorization: Bearer <token>'"
        )
        return _error(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge(header)})

    def index_status() -> IndexStatus:
        return IndexStatus(
            complete=index.complete,
            alerts=len(index),
            evicted=index.evicted,
            unreadable=index.unreadable,
        )

    def published(alert_id: str) -> Alert | None:
        entry = index.get(alert_id)
        return None if entry is None else entry.alert

    def ready() -> bool:
        check: Callable[[], bool] | None = getattr(app, "debitwatch_ready", None)
        return bool(check is not None and check())

    def local_state(key: str) -> tuple[PartitionState, Txn] | None:
        states: Mapping[int, PartitionState] = getattr(app, "debitwatch_states", {})
        for state in list(states.values()):
            txn = state.reconciler.store.get(key)
            if txn is not None:
                return state, txn
        return None

    @app.page("/alerts")
    async def alerts_page(self: web.View, request: web.Request) -> Any:
        if (refusal := denied(_aio(request))) is not None:
            return refusal
        params = list(_aio(request).query.items())
        try:
            query = parse_alert_query(params)
        except QueryError as error:
            return _error(400, error.message, error.detail)
        page = select(index.entries(), query)
        return _json(
            AlertList(
                alerts=[entry.alert for entry in page.entries],
                count=len(page.entries),
                total=page.total,
                next=None
                if page.next_cursor is None
                else next_link(_aio(request).path, params, page.next_cursor),
                index=index_status(),
            )
        )

    @app.page("/alerts/{alert_id}")
    async def alert_page(self: web.View, request: web.Request, alert_id: str) -> Any:
        if (refusal := denied(_aio(request))) is not None:
            return refusal
        entry = index.get(alert_id)
        if entry is None:
            if not index.complete:
                return _error(
                    503,
                    "alert index loading",
                    "this worker is still reading the alerts topic; retry in a few seconds",
                    headers={"Retry-After": "5"},
                )
            return _error(404, "unknown alert", f"no alert has the id {alert_id!r}")
        return _json(
            AlertDetail(
                alert=entry.alert,
                history=list(entry.history),
                transaction=transaction_path(entry.alert),
                index=index_status(),
            )
        )

    @app.page("/transactions/{terminal_id}/{stan}/{transmitted_at}")
    async def transaction_page(
        self: web.View, request: web.Request, terminal_id: str, stan: str, transmitted_at: str
    ) -> Any:
        if (refusal := denied(_aio(request))) is not None:
            return refusal
        try:
            local = _flag(_aio(request).query.getall(LOCAL_PARAMETER, []))
            key = transaction_key_of(terminal_id, stan, transmitted_at)
        except QueryError as error:
            return _error(400, error.message, error.detail)
        found = local_state(key)
        if found is not None:
            state, txn = found
            return _json(
                describe(
                    txn,
                    partition=state.partition,
                    config=settings.detection,
                    stream_time_us=state.reconciler.stream_time,
                    published=published,
                    served_by=own_url(app),
                )
            )
        if local:  # asked by another worker: answer for this one only
            if not ready():
                return _restoring()
            return _error(
                404, "unknown transaction", f"this worker does not hold transaction {key!r}"
            )
        answers = await ask_peers(
            app,
            peer_urls(app),
            # Rebuilt from the checked segments: the request target may be an absolute
            # URL (still routed by aiohttp), which would make no peer URL.
            "/transactions/"
            + "/".join(quote(part, safe="") for part in (terminal_id, stan, transmitted_at)),
            [(LOCAL_PARAMETER, "true")],
            {
                name: value
                for name, value in _aio(request).headers.items()
                if name.lower() == "authorization"  # the caller's own credentials, no more
            },
            config.peer_timeout,
        )
        for answer in answers:
            if answer.status == 200:
                return aio.Response(
                    body=answer.body, content_type=JSON, headers=dict(_DATA_HEADERS)
                )
        failed = [a for a in answers if a.status != 404]
        if failed or not ready():
            # Someone may hold it and could not say so: "not found" would be a guess.
            _log_failures(key, failed)
            return _restoring()
        return _error(
            404,
            "unknown transaction",
            f"no worker holds transaction {key!r}: never seen, or its retention ended",
        )

    @app.page("/triage")
    async def triage_page(self: web.View, request: web.Request) -> Any:
        return aio.Response(
            body=(static / "index.html").read_bytes(),
            content_type="text/html",
            charset="utf-8",
            headers=dict(_PAGE_HEADERS),
        )

    @app.page("/triage/{asset}")
    async def triage_asset(self: web.View, request: web.Request, asset: str) -> Any:
        content_type = ASSETS.get(asset)
        if content_type is None:
            return _error(404, "unknown file", f"the triage page has no file {asset!r}")
        return aio.Response(
            body=(static / asset).read_bytes(),
            content_type=content_type,
            charset="utf-8",
            headers=dict(_PAGE_HEADERS),
        )

    @app.page("/openapi.yaml")
    async def openapi_page(self: web.View, request: web.Request) -> Any:
        return aio.Response(
            body=(static / "openapi.yaml").read_bytes(),
            content_type="application/yaml",
            charset="utf-8",
        )

    return index


def transaction_path(alert: Alert) -> str | None:
    """The ``/transactions/...`` path of an alert's transaction (None for an incident)."""
    if alert.terminal_id is None or alert.stan is None or alert.transmitted_at is None:
        return None
    return (
        f"/transactions/{quote(alert.terminal_id, safe='')}/{alert.stan}/"
        f"{quote(alert.transmitted_at, safe='')}"
    )


def _aio(request: web.Request) -> aio.Request:
    """Faust's driver hands its views aiohttp's request (Faust types it as its own)."""
    return cast(aio.Request, request)


def _json(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    return aio.Response(
        body=_ENCODER.encode(value),
        status=status,
        content_type=JSON,
        headers={**_DATA_HEADERS, **(headers or {})},
    )


def _error(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> Any:
    return _json({"error": error, "detail": detail}, status, headers)


def _restoring() -> Any:
    return _error(
        503,
        "transaction state unavailable",
        "a worker is restoring its partitions or could not be reached; retry shortly",
        headers={"Retry-After": "5"},
    )


def _flag(values: list[str]) -> bool:
    """``local=true``: answer from this worker's own state only (what peers are sent)."""
    if not values:
        return False
    if len(values) == 1 and values[0] in ("true", "false", "1", "0"):
        return values[0] in ("true", "1")
    raise QueryError(
        f"invalid parameter {LOCAL_PARAMETER!r}: give it once, true or false", LOCAL_PARAMETER
    )


def _log_failures(key: str, failed: list[PeerAnswer]) -> None:
    for answer in failed:
        log.warning(
            "transaction %s: worker %s answered %s",
            key,
            answer.url,
            answer.status if answer.status is not None else answer.error,
        )
