"""Small simulated runs for the simulator tests, cached so each is generated once.

``run(...)`` returns the capture lines (bytes, framed, with their newline), the truth
records and the injected incidents; arguments mirror the CLI (``sets`` are
``--set NAME=VALUE``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec

from models.events import TransactionEvent, Watermark
from models.truth import IncidentTruth, TruthRecord, decode_truth_line
from models.validation import Rejection, decode_event
from streams.simulator import Simulation, SimulationConfig, SimulationStats, resolve
from streams.simulator.timefmt import parse_instant_ms
from streams.simulator.writer import write_lines, write_truth

SKEW = timedelta(seconds=120)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LINE = msgspec.json.Decoder(dict[str, msgspec.Raw])

# Every anomaly off, for scenario tests that switch exactly one on.
QUIET_SHARES = (
    "paid_again_share=0",
    "resolved_late_share=0",
    "no_outcome_share=0",
    "duplicate_timeout_share=0",
    "late_feed=0",
)


@dataclasses.dataclass(frozen=True)
class Run:
    capture: bytes
    truth_bytes: bytes
    stats: SimulationStats

    @functools.cached_property
    def lines(self) -> list[bytes]:
        return self.capture.splitlines(keepends=True)

    @functools.cached_property
    def truth_lines(self) -> list[TruthRecord | IncidentTruth]:
        return [decode_truth_line(line) for line in self.truth_bytes.splitlines()]

    @functools.cached_property
    def truth(self) -> list[TruthRecord]:
        """The expected transaction alerts (the incidents' lines left out)."""
        return [record for record in self.truth_lines if isinstance(record, TruthRecord)]

    @functools.cached_property
    def incidents(self) -> list[IncidentTruth]:
        return [record for record in self.truth_lines if isinstance(record, IncidentTruth)]


@functools.lru_cache(maxsize=64)
def run(
    profile: str = "default",
    transactions: int = 2_000,
    seed: int = 1,
    sets: tuple[str, ...] = (),
    start: str = "2026-11-26T20:00:00Z",
    rate: float = 20.0,
    merchants: int = 50,
    terminals: int = 200,
    cards: int = 2_000,
    final_watermarks: bool = True,
    verify_all: bool = True,
) -> Run:
    config = SimulationConfig(
        profile=resolve(profile, sets),
        transactions=transactions,
        seed=seed,
        start_ms=parse_instant_ms(start),
        rate=rate,
        merchants=merchants,
        terminals=terminals,
        cards=cards,
        final_watermarks=final_watermarks,
        verify_all=verify_all,
    )
    simulation = Simulation(config)
    capture = io.BytesIO()
    truth = io.BytesIO()
    write_lines(simulation.lines(), capture)
    write_truth(simulation.truth, truth, simulation.incidents)
    return Run(capture.getvalue(), truth.getvalue(), simulation.stats)


@dataclasses.dataclass(frozen=True)
class Decoded:
    source: str
    raw: bytes
    event: TransactionEvent | Watermark


def decoded(lines: list[bytes]) -> Iterator[Decoded]:
    """Every capture line through the contract's strict decoder; fails on a rejection."""
    for number, line in enumerate(lines, 1):
        frame = _LINE.decode(line)
        source = msgspec.json.decode(frame["source"])
        raw = bytes(frame["event"])
        event = decode_event(source, raw, SKEW)
        assert not isinstance(event, Rejection), f"line {number}: {event} {line!r}"
        assert isinstance(event, TransactionEvent | Watermark)
        yield Decoded(source, raw, event)


def key_of(event: TransactionEvent) -> tuple[str, str, int]:
    """The transaction key: terminal, STAN, transmitted_at's UTC epoch second."""
    return (event.terminal_id, event.stan, (event.transmitted_at - EPOCH) // timedelta(seconds=1))


def utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
