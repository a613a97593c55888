"""Builders for input events and captures, shared by the tests.

Times are given as seconds after ``BASE`` (2026-11-27T09:00:00Z) so a scenario reads
like a timeline; every builder returns the JSON bytes a producer would send, so tests
go through the same strict decoding as production input.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec

from models.capture import encode_line
from models.events import Source
from models.reconciler import Applied, Reconciler
from models.validation import Rejection, decode_event

BASE = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
BASE_SECOND = int(BASE.timestamp())
_ids = itertools.count(1)


def at(seconds: float) -> str:
    """RFC 3339 (UTC) for BASE + seconds."""
    moment = BASE + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    type_: str,
    t: float,
    *,
    terminal: str = "T-0001",
    stan: str = "000101",
    tx: float = 0.0,
    amount: int = 12_550,
    currency: str = "EUR",
    merchant: str = "M-001",
    card: str = "tok_card_a",
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One transaction event of ``type_`` occurring at BASE + t, for the sale sent at tx."""
    return {
        "event_id": event_id or f"ev-{next(_ids)}",
        "type": type_,
        "terminal_id": terminal,
        "merchant_id": merchant,
        "stan": stan,
        "transmitted_at": at(tx),
        "occurred_at": at(t),
        "amount_minor": amount,
        "currency": currency,
        "card_token": card,
        **extra,
    }


def watermark(t: float, event_id: str | None = None) -> dict[str, Any]:
    return {"type": "watermark", "event_id": event_id or f"wm-{next(_ids)}", "occurred_at": at(t)}


def far_future_watermark() -> dict[str, Any]:
    return {
        "type": "watermark",
        "event_id": f"wm-{next(_ids)}",
        "occurred_at": "9999-12-31T23:59:59Z",
    }


def encode(event_: dict[str, Any]) -> bytes:
    return msgspec.json.encode(event_)


def capture_line(source: str, event_: dict[str, Any] | bytes) -> bytes:
    raw = event_ if isinstance(event_, bytes) else encode(event_)
    return encode_line(cast(Source, source), raw)


def capture(items: list[tuple[str, dict[str, Any] | bytes]]) -> bytes:
    return b"".join(capture_line(source, ev) + b"\n" for source, ev in items)


def decode(source: str, event_: dict[str, Any], skew: float = 120.0) -> Any:
    """Decode through the production validator; fail the test on a rejection."""
    decoded = decode_event(cast(Source, source), encode(event_), timedelta(seconds=skew))
    assert not isinstance(decoded, Rejection), decoded
    return decoded


def apply(reconciler: Reconciler, source: str, event_: dict[str, Any]) -> Applied:
    """Decode ``event_`` strictly and apply it, as the replay does."""
    return reconciler.apply(cast(Source, source), decode(source, event_))


def run(
    items: list[tuple[str, dict[str, Any]]],
    config: Any = None,
    *,
    finish: bool = True,
) -> list[Any]:
    """Feed events (arrival order) to a fresh Reconciler; return every published alert."""
    reconciler = Reconciler(config)
    for source, event_ in items:
        apply(reconciler, source, event_)
    if finish:
        reconciler.finish()
    return reconciler.take_alerts()


def final_status(alerts: list[Any]) -> dict[str, str]:
    """kind -> last status, for a scenario about one transaction."""
    return {alert.kind.value: alert.status.value for alert in alerts}


def firing_kinds(alerts: list[Any]) -> set[str]:
    return {kind for kind, status in final_status(alerts).items() if status == "firing"}
