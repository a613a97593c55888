"""One HTTP attempt: POST a signed body, report the status or why there was none."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Final

import aiohttp

from streams.metrics import version

log = logging.getLogger("debitwatch.webhooks")
USER_AGENT = f"debitwatch/{version()} (webhooks)"
# Enough of a refusal's body to say why, at DEBUG only: a receiver's body can echo what
# it was sent (alert fields) or carry its own internals, so it stays out of WARNING
# logs, ``last_error`` and the dead-letter topic, which are read more widely.
_ERROR_BODY_BYTES: Final = 200
# A reason phrase is the receiver's text too: bounded, so a log line stays one line.
_REASON_CHARS: Final = 60


@dataclasses.dataclass(frozen=True)
class AttemptResult:
    """``status`` None: no HTTP answer (``error`` says why)."""

    status: int | None
    retry_after: str | None
    error: str | None
    seconds: float


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    *,
    endpoint: str,
) -> AttemptResult:
    """POST ``body``; never raises for what the network or the receiver does.

    ``error`` holds no URL and no response body, only the status and reason phrase or
    the kind of network failure: some URLs are secrets themselves (a Slack incoming
    webhook's path), and the error goes into WARNING logs and dead letters. Log lines
    name the ``endpoint`` instead.
    """
    started = time.perf_counter()
    sent = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
    try:
        async with session.post(
            url,
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=timeout),
            # A redirect would re-send a signed request somewhere the operator never
            # configured; it counts as a failure instead (streams/webhooks/backoff.py).
            allow_redirects=False,
        ) as response:
            detail = None
            if response.status >= 300:
                detail = status_line(response.status, response.reason)
            if response.status >= 400:
                text = (await response.content.read(_ERROR_BODY_BYTES)).decode(errors="replace")
                log.debug("webhook endpoint %s: %s, body %r", endpoint, detail, text)
            else:
                await response.read()  # drain, so the connection can be reused
            return AttemptResult(
                response.status,
                response.headers.get("Retry-After"),
                detail,
                time.perf_counter() - started,
            )
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except aiohttp.ClientConnectorError as exc:
        error = f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    except (aiohttp.ClientError, OSError) as exc:
        # The exception's text may hold the URL (aiohttp puts it in most): only its
        # kind, and an OS error's description, which never does.
        error = network_error(exc)
    return AttemptResult(None, None, error, time.perf_counter() - started)


def status_line(status: int, reason: str | None) -> str:
    """``HTTP <status> <reason phrase>``: what an answer says, without its body.

    >>> status_line(503, "Service Unavailable"), status_line(401, None)
    ('HTTP 503 Service Unavailable', 'HTTP 401')
    >>> status_line(500, "Oops\x1b[2J"), len(status_line(500, "x" * 1000))
    ('HTTP 500 Oops?[2J', 69)
    """
    phrase = "".join(c if c.isprintable() else "?" for c in (reason or "").strip())
    phrase = phrase[:_REASON_CHARS]
    return f"HTTP {status} {phrase}" if phrase else f"HTTP {status}"


def network_error(exc: BaseException) -> str:
    """A failure without an answer, as the exception's class (and an OS error's text).

    >>> network_error(ConnectionResetError(104, "Connection reset by peer"))
    'ConnectionResetError: Connection reset by peer'
    >>> network_error(aiohttp.InvalidURL("https://hooks.example.com/T000/secret-path"))
    'InvalidURL'
    """
    strerror = getattr(exc, "strerror", None)
    name = type(exc).__name__
    return f"{name}: {strerror}" if isinstance(strerror, str) and strerror else name


def new_session(limit: int) -> aiohttp.ClientSession:
    """A client session for every endpoint of the worker (bounded connection pool)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
        # The payload's own JSON; no cookies between receivers.
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )
