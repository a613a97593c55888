"""One HTTP attempt: POST a signed body, report the status or why there was none."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import aiohttp

from streams.metrics import version

USER_AGENT = f"debitwatch/{version()} (webhooks)"
# Enough of a refusal's body to say why in the dead letter; never logged at INFO.
_ERROR_BODY_BYTES = 200


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
) -> AttemptResult:
    """POST ``body``; never raises for what the network or the receiver does."""
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
            if response.status >= 400:
                text = (await response.content.read(_ERROR_BODY_BYTES)).decode(errors="replace")
                detail = f"HTTP {response.status}: {text.strip()}" if text.strip() else None
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
        # Some URLs are secrets themselves (a Slack incoming webhook's path): never in a
        # log line or a dead letter.
        error = f"{type(exc).__name__}: {exc}".replace(url, "<endpoint url>")
    return AttemptResult(None, None, error, time.perf_counter() - started)


def new_session(limit: int) -> aiohttp.ClientSession:
    """A client session for every endpoint of the worker (bounded connection pool)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
        # The payload's own JSON; no cookies between receivers.
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )
