"""Ask the other workers: a transaction's state lives only on the worker that owns it.

Its join partition depends on the merchant, which the path of
``GET /transactions/{terminal_id}/{stan}/{transmitted_at}`` does not carry, so a worker
that does not hold the key asks every other worker of the group at once, with
``local=true`` (answer from your own state, do not forward again), and returns the
owner's answer. The group's members are the web addresses Faust's partition assignor
shares with every member at each rebalance (``app.router.tables_metadata()``: canonical
URL -> the changelog partitions it owns), the same table Faust's own ``/router`` page
uses. A worker with no partition of the join owns no transaction and is not asked.

A group has a handful of workers; one request each, in parallel, costs a round trip.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import faust
from yarl import URL


@dataclasses.dataclass(frozen=True)
class PeerAnswer:
    """One worker's answer: ``status`` None if it could not be reached (``error`` says why)."""

    url: str
    status: int | None
    body: bytes = b""
    content_type: str = "application/json"
    error: str | None = None


def own_url(app: faust.App) -> str:
    return str(app.conf.canonical_url)


def peer_urls(app: faust.App) -> list[str]:
    """The other workers' canonical URLs, as the last rebalance announced them."""
    own = own_url(app)
    try:
        metadata: Mapping[str, Any] = app.router.tables_metadata()
    except (AttributeError, KeyError):  # before the first assignment
        return []
    return sorted(url for url in metadata if url != own)


async def ask_peers(
    app: faust.App,
    urls: Sequence[str],
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    timeout: float,
) -> list[PeerAnswer]:
    """GET ``raw_path`` (percent-encoded, as received) with ``query`` on every url."""
    session: aiohttp.ClientSession = app.http_client
    limit = aiohttp.ClientTimeout(total=timeout)

    async def one(base: str) -> PeerAnswer:
        try:
            url = URL(base.rstrip("/") + raw_path, encoded=True).with_query(list(query))
            async with session.get(url, headers=dict(headers), timeout=limit) as response:
                return PeerAnswer(
                    base,
                    response.status,
                    await response.read(),
                    response.content_type,
                )
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            return PeerAnswer(base, None, error=f"{type(error).__name__}: {error}".rstrip(": "))

    return list(await asyncio.gather(*(one(url) for url in urls)))
