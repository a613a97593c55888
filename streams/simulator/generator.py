"""The labelled traffic generator: events in arrival order, and the ground truth.

:class:`Simulation` is the core that every consumer shares: iterating it yields
``(arrival_time_us, source, event_json)`` in arrival order, as a stream (memory holds
only events still in flight), so the file writer, a Kafka producer pacing by wall clock,
or a test can consume it alike. While it runs it collects :attr:`Simulation.truth`,
one :class:`models.truth.TruthRecord` per alert that must be firing at the end of the
capture; the truth is complete once iteration has finished.

Everything is drawn from one ``random.Random(seed)`` in a fixed order (plus the
disorder module's generators for feed bursts and rare delays, seeded from the same
seed, and the incidents' own generator, :mod:`.incidents`), no set is iterated and no
``hash()`` is used, so the same config gives byte-identical output on every run.
Fleet-level incidents (:attr:`Simulation.incidents`) are planned up front; a run
without any draws nothing more and gives the bytes it gave before incidents existed.

Speed: a plain matched single-message sale (two transactions in three) skips its event
list and goes straight to :meth:`Emitter.emit_sale`; ``verify_all`` turns that fast path
off and judges every sale, and the tests check both give the same bytes.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
from collections import Counter
from collections.abc import Iterator
from typing import Final

from models.alerts import alert_id
from models.truth import IncidentTruth, TruthRecord
from streams.simulator import scenarios
from streams.simulator.catalogue import SCENARIO_FUNCTIONS
from streams.simulator.disorder import Disorder
from streams.simulator.emitter import Emitter
from streams.simulator.encode import event_json, watermark_line
from streams.simulator.fleet import build_fleet
from streams.simulator.incidents import (
    IncidentTraffic,
    draw_schedule,
    plan_incidents,
    run_span_ms,
)
from streams.simulator.ordering import Arrival, ArrivalBuffer, Line
from streams.simulator.profiles import PROFILES, SCENARIOS, Profile
from streams.simulator.scenarios import Builder, Scenario
from streams.simulator.timefmt import format_utc_second, parse_instant_ms
from streams.simulator.transaction import Txn
from streams.simulator.verdict import judge

DEFAULT_START: Final = "2026-11-26T20:00:00Z"
# After a story's last terminal event the terminal is free again this much later.
_TERMINAL_TURNAROUND_MS: Final = 3_000
# Transactions built only by scenarios.matched_sale (a matched sale, by construction): they are
# ~90 % of traffic, and judging them would cost ~10 % of the run. verify_all judges them.
_MATCHED_BY_CONSTRUCTION: Final = frozenset(
    ("approved", "approved.late_feed", "paid_again", "retry", "second_card")
)


class SimulatorError(RuntimeError):
    """A scenario produced events whose verdict differs from what it meant: a bug here."""


@dataclasses.dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. ``transactions`` counts primary scenario draws; follow-up sales
    a scenario implies (paying again, a second card, a retry) come on top."""

    profile: Profile = PROFILES["default"]
    transactions: int = 10_000
    seed: int = 1
    start_ms: int = parse_instant_ms(DEFAULT_START)
    rate: float = 20.0
    merchants: int = 200
    terminals: int = 1_000
    cards: int = 50_000
    final_watermarks: bool = True
    # One of `shards` independent parts of a run (streams.simulator.shards): its own
    # terminals, merchants, cards and event-id namespace, so parts can run in parallel.
    shard: int = 0
    shards: int = 1
    # Judge every transaction against the contract's rules, even plain matched sales
    # (slower; the tests turn it on). Anything that can raise an alert is always judged.
    verify_all: bool = False
    # For a shard: the whole run's seed and span (ms), from which every shard draws
    # the same incident schedule. None: this config is the whole run.
    run_seed: int | None = None
    run_span_ms: int | None = None


@dataclasses.dataclass
class SimulationStats:
    """Counters for the end-of-run summary (filled while iterating)."""

    transactions: int = 0
    follow_ups: int = 0
    events: int = 0
    lines: int = 0
    redelivered: int = 0
    late_tail: int = 0
    paid_again: int = 0
    scenarios: Counter[str] = dataclasses.field(default_factory=Counter)
    alerts: Counter[str] = dataclasses.field(default_factory=Counter)
    incidents: Counter[str] = dataclasses.field(default_factory=Counter)  # injected, by type
    incident_sales: Counter[str] = dataclasses.field(default_factory=Counter)  # sales changed
    last_arrival_us: int | None = None


class Simulation:
    """Iterate for arrivals; read :attr:`truth` and :attr:`stats` afterwards.

    :attr:`incidents` (the fleet-level incidents' truth lines) is known from the start.
    """

    def __init__(self, config: SimulationConfig) -> None:
        if config.transactions < 0:
            raise ValueError("--transactions must be >= 0")
        if not config.rate > 0:
            raise ValueError("--rate must be > 0")
        self.config = config
        self.truth: list[TruthRecord] = []
        self.stats = SimulationStats()
        profile = config.profile
        self._rng = random.Random(config.seed)
        self._fleet = build_fleet(
            self._rng,
            merchants=config.merchants,
            terminals=config.terminals,
            cards=config.cards,
            start_ms=config.start_ms,
            max_clock_skew_s=profile.max_clock_skew_s,
            stan_reset_share=profile.stan_reset_share,
            stan_near_wrap_share=profile.stan_near_wrap_share,
            ms_transmitted_share=profile.ms_transmitted_share,
            dual_message_share=profile.dual_message_share,
            name_base=config.shard,
            name_step=config.shards,
        )
        self._builder = Builder(self._rng, profile, self._fleet)
        self._disorder = Disorder(self._rng, profile, config.seed, config.start_ms)
        self._buffer = ArrivalBuffer()
        self._emitter = Emitter(
            self._disorder, self._buffer, id_tag=str(config.shard) if config.shards > 1 else ""
        )
        self._started = False
        self._trusted: frozenset[str] = (
            frozenset() if config.verify_all else _MATCHED_BY_CONSTRUCTION
        )
        self._incidents = self._plan_incidents()
        self.incidents: list[IncidentTruth] = (
            [incident.truth for incident in self._incidents.incidents] if self._incidents else []
        )
        for truth in self.incidents:
            self.stats.incidents[truth.incident] += 1

    def _plan_incidents(self) -> IncidentTraffic | None:
        """This run's (or shard's) incidents; None when the profile has none."""
        config = self.config
        seed = config.seed if config.run_seed is None else config.run_seed
        span = config.run_span_ms
        if span is None:
            span = run_span_ms(config.transactions, config.rate)
        slots = draw_schedule(seed, config.start_ms, span, config.profile)
        if not slots:
            return None
        rng = random.Random(f"debitwatch-incident-targets-{seed}-{config.shard}")
        incidents = plan_incidents(
            slots, self._fleet, rng, seed=seed, shard=config.shard, shards=config.shards
        )
        if not incidents:
            return None
        return IncidentTraffic(
            incidents,
            rng=rng,
            profile=config.profile,
            rate=config.rate,
            terminals=len(self._fleet.terminals),
        )

    def _draw_table(self) -> tuple[list[float], list[Scenario], list[str]]:
        """Cumulative probabilities of the scenarios with a non-zero rate."""
        cumulative: list[float] = []
        functions: list[Scenario] = []
        names: list[str] = []
        total = 0.0
        for name in SCENARIOS:
            rate = self.config.profile.rate(name)
            if rate > 0:
                total += rate
                cumulative.append(total)
                functions.append(SCENARIO_FUNCTIONS[name])
                names.append(name)
        if cumulative:
            cumulative[-1] = math.inf  # absorb float rounding: the last one takes the rest
        return cumulative, functions, names

    def __iter__(self) -> Iterator[Arrival]:
        return self.arrivals()

    def arrivals(self) -> Iterator[Arrival]:
        """The capture, one ``(arrival_time_us, source, event_json)`` at a time, in
        arrival order. Can be iterated once (it shares the run with :meth:`lines`)."""
        for batch in self.lines():
            for arrival_us, source, line in batch:
                yield arrival_us, source, event_json(source, line)

    def lines(self) -> Iterator[list[Line]]:
        """The capture as consecutive batches (one per arrival second) of *framed* lines.

        Each item is ``(arrival_time_us, source, line)`` where ``line`` is the complete
        capture line, ``{"source": ..., "event": {...}}`` and a newline: the file writer
        joins them as they are. Can be iterated once.
        """
        if self._started:
            raise RuntimeError("a Simulation can be iterated only once")
        self._started = True
        config = self.config
        random_ = self._rng.random
        log = math.log
        buffer = self._buffer
        builder = self._builder
        emit = self._emit
        mean_gap_ms = 1000.0 / config.rate
        cumulative, functions, _ = self._draw_table()
        at_ms = config.start_ms
        heap = buffer.heap
        generic_approved = None if config.verify_all else scenarios.approved
        fast_sale = self._fast_sale
        incidents = self._incidents
        # Before this event time no incident acts on the traffic (inf: there are none).
        quiet_until = incidents.next_edge if incidents is not None else math.inf
        for _ in range(config.transactions if functions else 0):
            at_ms += int(-mean_gap_ms * log(1.0 - random_()))
            if heap and heap[0] < at_ms // 1000:  # buffer.ready(at_ms * 1000), inlined
                yield from buffer.pop_before(at_ms * 1000)
            scenario = functions[bisect.bisect_right(cumulative, random_())]
            if at_ms >= quiet_until:
                assert incidents is not None
                if incidents.active(at_ms):
                    self._incident_sale(incidents, scenario, at_ms)
                    continue
                quiet_until = incidents.next_edge
            if scenario is generic_approved:
                story = fast_sale(at_ms)
                if story is not None:
                    emit(story)
            else:
                emit(scenario(builder, at_ms))
        yield from buffer.drain()
        stats = self.stats
        stats.redelivered = self._disorder.redelivered
        stats.late_tail = self._disorder.late
        stats.lines = stats.events + stats.redelivered
        stats.last_arrival_us = buffer.last_arrival_us
        if config.final_watermarks:
            last = buffer.last_arrival_us
            end = last if last is not None else config.start_ms * 1000
            stats.lines += 2
            yield [(end, source, watermark_line(source)) for source in ("terminal", "issuer")]

    def _incident_sale(self, incidents: IncidentTraffic, scenario: Scenario, at_ms: int) -> None:
        """A sale while an incident acts: its terminal first, then the incident's story
        if the terminal is hit, else the scenario the traffic drew, on that terminal."""
        builder = self._builder
        terminal = incidents.terminal(at_ms, self._fleet, self._rng)
        story = incidents.story(builder, at_ms, terminal)
        if story is not None:
            self.stats.incident_sales[story[0].scenario.rsplit(".", 1)[1]] += 1
            self._emit(story)
            return
        builder.next_terminal = terminal
        try:
            if scenario is scenarios.approved and not self.config.verify_all:
                fast = self._fast_sale(at_ms)
                if fast is not None:
                    self._emit(fast)
            else:
                self._emit(scenario(builder, at_ms))
        finally:
            builder.next_terminal = None

    def _fast_sale(self, t0: int) -> list[Txn] | None:
        """:func:`scenarios.approved`, emitted directly when it is a plain matched
        single-message sale (two transactions in three); otherwise its story.

        The draws are the generic path's, in its order, so a run gives the same bytes
        either way (``verify_all`` takes the generic path; a test compares them).
        """
        builder = self._builder
        tx = builder.open("approved", t0)
        if tx.card.dual_message:
            return scenarios.approved_after_open(builder, tx)
        answered, posted, shown = scenarios.sale_timing(builder, t0)
        if scenarios.late_feed(builder, tx):
            scenarios.sale_events(tx, answered, posted, shown)
            return [tx]
        self._emitter.emit_sale(tx, answered, posted, shown)
        stats = self.stats
        stats.transactions += 1
        stats.scenarios["approved"] += 1
        stats.events += 4
        busy_until = shown + _TERMINAL_TURNAROUND_MS
        if busy_until > tx.terminal.busy_until:
            tx.terminal.busy_until = busy_until
        return None

    def _emit(self, story: list[Txn]) -> None:
        """Judge, record the truth, render and schedule the arrival of one story."""
        stats = self.stats
        emit = self._emitter.emit
        record_truth = self._record_truth
        trusted = self._trusted
        stats.transactions += 1
        stats.scenarios[story[0].scenario] += 1
        busy_until = 0
        for tx in story:
            if tx.scenario not in trusted:
                record_truth(tx)
            emit(tx)
            stats.events += len(tx.events)
            if tx.terminal_end > busy_until:
                busy_until = tx.terminal_end
        if len(story) > 1:
            stats.follow_ups += len(story) - 1
        terminal = story[0].terminal
        busy_until += _TERMINAL_TURNAROUND_MS
        if busy_until > terminal.busy_until:
            terminal.busy_until = busy_until

    def _record_truth(self, tx: Txn) -> None:
        fired = judge(tx.events)
        if fired.keys() != tx.expected.keys():
            raise SimulatorError(
                f"scenario {tx.scenario!r} at {tx.terminal.terminal_id}/{tx.stan} fires "
                f"{sorted(fired)} but means {sorted(tx.expected)}"
            )
        if tx.paid_again:
            self.stats.paid_again += 1
        if not fired:
            return
        second = tx.t0 // 1000
        transmitted = format_utc_second(second)
        terminal_id = tx.terminal.terminal_id
        for kind, at_risk in fired.items():
            self.stats.alerts[kind.value] += 1
            self.truth.append(
                TruthRecord(
                    alert_id=alert_id(terminal_id, tx.stan, second, kind),
                    kind=kind,
                    terminal_id=terminal_id,
                    stan=tx.stan,
                    transmitted_at=transmitted,
                    merchant_id=tx.terminal.merchant.merchant_id,
                    card_token=tx.card.card_token,
                    probable_cause=tx.expected[kind],
                    paid_again=tx.paid_again,
                    at_risk_minor=at_risk,
                    scenario=tx.scenario,
                )
            )
