"""Offline replay: captures in, alerts and dead letters out (``debitwatch replay``).

The thinnest shell around the core: read capture lines in order, validate each event
exactly as the stream workers do, feed the :class:`~models.reconciler.Reconciler`, write
every published alert state as a JSON line. At the end both sources' progress goes to
infinity, so every open window closes (CONTRACT §4).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import msgspec

from models.capture import event_bytes, feed_lines
from models.config import DetectionConfig
from models.dead_letter import dead_letter
from models.deadlines import DeadlineConfig
from models.final_states import FinalStates
from models.incidents import IncidentConfig, IncidentScorer, IncidentTracker
from models.reconciler import Reconciler, Stats
from models.validation import Rejection

_ENCODER = msgspec.json.Encoder()


@dataclasses.dataclass
class ReplaySummary:
    """What a replay did; printed at the end and written by ``--summary-json``."""

    lines: int = 0
    events: int = 0
    watermarks: int = 0
    duplicates: int = 0
    late: int = 0
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)
    published: Counter[str] = dataclasses.field(default_factory=Counter)
    firing: Counter[str] = dataclasses.field(default_factory=Counter)
    at_risk_by_currency: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    final: FinalStates = dataclasses.field(default_factory=FinalStates, repr=False)

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def replay(
    paths: Iterable[Path],
    alerts_out: BinaryIO,
    *,
    dlq_out: BinaryIO | None = None,
    config: DetectionConfig | None = None,
    on_progress: Callable[[int], None] | None = None,
    incidents: IncidentScorer | None = None,
    incident_config: IncidentConfig | None = None,
    deadlines: DeadlineConfig | None = None,
) -> ReplaySummary:
    """Replay ``paths`` in order as one stream; return the summary.

    ``on_progress`` is called with the number of bytes read since the last call, once
    per block of lines (it drives the progress bar). ``incidents`` scores terminals for
    ``terminal_incident`` alerts (None: none are raised).
    """
    config = config or DetectionConfig()
    skew = timedelta(seconds=config.max_clock_skew)
    tracker = None if incidents is None else IncidentTracker(incidents, incident_config)
    reconciler = Reconciler(config, incidents=tracker, deadlines=deadlines)
    summary = ReplaySummary()
    final = FinalStates()
    started = time.perf_counter()
    write_alert = alerts_out.write
    encode = _ENCODER.encode

    def publish() -> None:
        for alert in reconciler.take_alerts():
            final.add(alert)
            summary.published[f"{alert.kind}/{alert.status}"] += 1
            write_alert(encode(alert) + b"\n")

    name = ""

    def reject(
        rejection: Rejection,
        raw: bytes,
        line: int,
        source: str | None = None,
        event_id: str | None = None,
    ) -> None:
        summary.rejected[rejection.reason] += 1
        if dlq_out is not None:
            record = dead_letter(
                rejection.reason,
                rejection.detail,
                raw,
                source=source,
                file=name,
                line=line,
                event_id=event_id,
            )
            dlq_out.write(encode(record) + b"\n")

    for path in paths:
        name = str(path)
        with path.open("rb") as capture:
            for first_number, block in _blocks(capture):
                stripped = [text.strip() for text in block]
                numbers = [first_number + i for i, line in enumerate(stripped) if line]
                lines = [line for line in stripped if line]
                summary.lines += len(lines)
                for problem in feed_lines(reconciler, lines, skew):
                    line = lines[problem.position]
                    # The event's own bytes when the line had an event, else the line.
                    raw = line if problem.source is None else event_bytes(line)
                    reject(
                        problem.rejection,
                        raw,
                        numbers[problem.position],
                        problem.source,
                        problem.event_id,
                    )
                if reconciler.outbox:
                    publish()
                if on_progress is not None:
                    on_progress(sum(len(text) for text in block))
    reconciler.finish()
    publish()
    _fill(summary, reconciler.stats, final)
    summary.seconds = time.perf_counter() - started
    return summary


def _blocks(capture: BinaryIO, size: int = 2048) -> Iterator[tuple[int, list[bytes]]]:
    """Lines in blocks of ``size``, with the 1-based number of each block's first line."""
    number = 1
    while block := list(itertools.islice(capture, size)):
        yield number, block
        number += len(block)


def _fill(summary: ReplaySummary, stats: Stats, final: FinalStates) -> None:
    summary.events = stats.events
    summary.watermarks = stats.watermarks
    summary.duplicates = stats.duplicates
    summary.late = stats.late
    summary.firing = Counter(alert.kind.value for alert in final.firing())
    summary.at_risk_by_currency = final.at_risk_by_currency()
    summary.final = final
