"""The alerts topic for people (a live tail) and for files (a JSON Lines export).

The tail shows one line per state change, as published: the same alert appears again
when it resolves, which is what an operator watching a live run wants to see. The
export writes the topic's raw values, untouched, so ``debitwatch evaluate`` scores the
stream's alerts exactly as it scores the offline replay's output.

Records that are not alert JSON (someone else writing to the topic) are shown or
exported as they are, never dropped silently: the tail marks them, the export keeps
them, and ``evaluate`` then reports the file as unparsable.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec
from rich.console import Console
from rich.markup import escape

from models import currencies
from streams.kafka_clients import ConsumerRecord, read_topic
from streams.settings import Settings

_STATUS_STYLE: Final = {"firing": "bold red", "resolved": "green"}
_SEVERITY_STYLE: Final = {"critical": "bold red", "high": "red", "medium": "yellow"}


def _money(amount: Any, currency: Any) -> str:
    if not isinstance(amount, int):
        return "-"
    if isinstance(currency, str) and currencies.is_known(currency):
        return currencies.format_minor(amount, currency)
    return f"{amount} {currency or '?'}"


def _text(value: Any, width: int = 0, style: str = "") -> str:
    text = escape(str(value if value is not None else "-").ljust(width))
    return f"[{style}]{text}[/]" if style else text


def alert_line(alert: dict[str, Any]) -> str:
    """One alert state change as one line of rich markup.

    >>> alert_line({"detected_at": "2026-11-27T09:06:01Z", "status": "firing",
    ...     "kind": "unmatched_debit", "severity": "high", "terminal_id": "T-1",
    ...     "stan": "000101", "terminal_amount_minor": 12550, "currency": "EUR",
    ...     "at_risk_minor": 12550, "probable_cause": "network_failure"})[:48]
    '2026-11-27T09:06:01Z      [bold red]firing   [/]'
    """
    amount = alert.get("terminal_amount_minor")
    if amount is None:
        amount = alert.get("issuer_amount_minor")
    currency = alert.get("currency")
    status, severity = str(alert.get("status")), str(alert.get("severity"))
    return (
        f"{_text(alert.get('detected_at'), 24)}  "
        f"{_text(status, 9, _STATUS_STYLE.get(status, ''))}"
        f"{_text(severity, 9, _SEVERITY_STYLE.get(severity, ''))}"
        f"{_text(alert.get('kind'), 27)}"
        # A merchant incident has no terminal: its merchant stands in that column.
        f"{_text(alert.get('terminal_id') or alert.get('merchant_id'), 17)}"
        f"{_text(alert.get('stan'), 7)}"
        f"{_text(_money(amount, currency).rjust(16))}  "
        f"at risk {_text(_money(alert.get('at_risk_minor'), currency), 16)}  "
        f"{_text(alert.get('probable_cause'))}"
    )


def _decode(record: ConsumerRecord) -> dict[str, Any] | None:
    try:
        value = msgspec.json.decode(record.value)
    except (msgspec.DecodeError, TypeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def tail(settings: Settings, from_beginning: bool, console: Console) -> int:
    """Print alert state changes as they are published, until Ctrl-C; return how many.

    Raises BrokerError if the broker is unreachable or the alerts topic is missing.
    """
    where = "from the beginning" if from_beginning else "new alerts only"
    console.print(
        f"[dim]tailing {escape(settings.alerts_topic)} at {escape(settings.bootstrap)} "
        f"({where}; Ctrl-C to stop)[/dim]"
    )
    shown = 0
    records = read_topic(
        settings, settings.alerts_topic, until_idle=math.inf, from_beginning=from_beginning
    )
    try:
        for record in records:
            if record.value is None:
                continue  # a tombstone: nothing to show
            alert = _decode(record)
            if alert is None:
                console.print(
                    f"[magenta]not an alert[/] (partition {record.partition}, offset "
                    f"{record.offset}): {escape(repr(record.value[:120]))}",
                    highlight=False,
                )
            else:
                console.print(alert_line(alert), highlight=False)
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        records.close()
    return shown


@contextlib.contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    if str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with path.open("wb") as handle:
        yield handle


def export(settings: Settings, out_path: Path, until_idle: float) -> int:
    """Write the alerts topic, from the beginning, as JSON Lines; return the count.

    Each value as published, one per line; each partition in offset order (partitions
    interleave; an alert's states share a partition, being keyed by ``alert_id``).
    ``out_path`` ``-`` is stdout. Raises OSError if the file cannot be written,
    BrokerError if the broker is unreachable or the topic is missing.
    """
    count = 0
    records = read_topic(settings, settings.alerts_topic, until_idle=until_idle)
    first = next(records, None)  # a missing topic or broker fails here, before the file
    with _open(out_path) as out:
        for record in itertools.chain([first] if first is not None else [], records):
            value: bytes | None = record.value
            if value is None:
                continue
            out.write(b" ".join(value.strip().splitlines()) + b"\n")
            count += 1
    return count
