"""Fleet-level incidents: many sales of one merchant, market or terminal going wrong the
same way for a few minutes, as an anomaly scorer (``terminal_incident``) should notice.

=================== ======== ====================================================== ==========
incident            scope    every sale *starting* in [start, end) at the scope's   cause
                             terminals ...
=================== ======== ====================================================== ==========
merchant_outage     merchant times out: the merchant's link lost the host's replies; network_
                             half were approved and debited (``network_failure``     failure
                             ghosts), the rest never reached the bank
                             (``timeout_no_money``)
issuer_slowdown     market   times out before the issuer answers: 70 %              issuer_late_
                             ``issuer_late_response`` ghosts, else                  response
                             ``timeout_no_money``; at most 5 merchants of the
                             market (those routed to the slowed issuer)
faulty_terminal     terminal shows ``error`` after approval (``terminal_fault``)    terminal_
                             with probability 0.7, else its sale as drawn            fault
duplicate_burst     terminal is processed twice by the bank                         duplicate_
                             (``duplicate_processing``) with probability 0.8, else   processing
                             its sale as drawn
=================== ======== ====================================================== ==========

**The schedule** (which incidents, when, for how long) is a Poisson process of
``incidents_per_day`` over the run's span (``transactions / rate`` from ``start``),
types drawn by the ``*_share`` weights, durations uniform in ``incident_min_minutes`` ..
``incident_max_minutes`` (whole seconds). It comes from its own ``random.Random``
seeded with the run's seed and a constant, never from the traffic's generator, so a run
without incidents draws exactly what it always drew (the same bytes), and every shard of
a sharded run draws the same schedule. Incident ``n`` (``inc-<seed>-<n>``) belongs to
shard ``n mod shards``, which picks its target in its own slice of the fleet; a sharded
run therefore has the same incidents at the same times as a one-shard run, on other
terminals (the shards' fleets are other fleets).

**Targets** are busy ones: the merchant of an outage from the quarter of merchants
with the most terminals (terminals are equally popular, so that is the busiest quarter
of merchants), the market of a slowdown from the busiest quarter of markets and, in
it, up to 5 merchants from its busiest half. A single terminal is not busy enough by
itself (a terminal takes ``rate / terminals`` sales a second, ~1.2 a minute with the
defaults): from 10 minutes before a ``faulty_terminal`` or ``duplicate_burst`` to 10
minutes after it, sales are steered to its terminal (when idle) so that it takes
``incident_terminal_sales_per_min`` (default 6; serving one sale at a time, it reaches
2.5-4.5): a busy till with a normal baseline before the fault, the fault, and recovery.
No two incidents touch the same terminal within 10 minutes of each other; an incident
that finds no free target is dropped (its number is then missing from the truth).

During an incident, the cardholder does not pay again right away (``paid_again_share``
is 0 for the incident's stories: a retry would fail the same way). Follow-up sales of
stories that started before the window, and redelivered or late events, are as usual.

The truth file gets one :class:`models.truth.IncidentTruth` line per incident; the
affected sales' own truth records are written as for any other sale, their
``scenario`` ending in ``.<incident>`` (``network_failure.merchant_outage``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Final, TypeVar

from models.alerts import Cause
from models.truth import IncidentTruth
from streams.simulator.catalogue import SCENARIO_FUNCTIONS
from streams.simulator.fleet import Fleet, Merchant, Terminal
from streams.simulator.profiles import Profile
from streams.simulator.scenarios import Builder, Scenario
from streams.simulator.timefmt import MS_PER_DAY, MS_PER_MINUTE, format_utc_second
from streams.simulator.transaction import Txn

INCIDENT_TYPES: Final = ("merchant_outage", "issuer_slowdown", "faulty_terminal", "duplicate_burst")
SCOPES: Final = {
    "merchant_outage": "merchant",
    "issuer_slowdown": "market",
    "faulty_terminal": "terminal",
    "duplicate_burst": "terminal",
}
CAUSES: Final = {
    "merchant_outage": Cause.NETWORK_FAILURE,
    "issuer_slowdown": Cause.ISSUER_LATE_RESPONSE,
    "faulty_terminal": Cause.TERMINAL_FAULT,
    "duplicate_burst": Cause.DUPLICATE_PROCESSING,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Effect:
    """What a sale in the window becomes: ``scenario`` with ``probability``, else
    ``otherwise`` (None: the sale the traffic drew, untouched)."""

    scenario: str
    probability: float
    otherwise: str | None


EFFECTS: Final = {
    "merchant_outage": Effect("network_failure", 0.5, "timeout_no_money"),
    "issuer_slowdown": Effect("issuer_late_response", 0.7, "timeout_no_money"),
    "faulty_terminal": Effect("terminal_fault", 0.7, None),
    "duplicate_burst": Effect("duplicate_processing", 0.8, None),
}
SLOWDOWN_MAX_MERCHANTS: Final = 5
# Around a terminal-scoped incident, traffic is steered to its terminal from this long
# before to this long after; no other incident may touch its terminals that close.
MARGIN_MS: Final = 10 * MS_PER_MINUTE
# A sale is steered to a busy terminal with at most this probability; a terminal that
# was busy when its turn came is owed at most this many sales.
_MAX_STEER: Final = 0.5
_MAX_OWED: Final = 3.0
_BUSY_SHARE: Final = 0.25

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Slot:
    """One incident of the schedule, before it has a target (the same in every shard)."""

    number: int
    incident: str
    start_ms: int
    end_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Incident:
    """A planned incident: its slot, the terminals it hits, and its truth line."""

    slot: Slot
    terminals: tuple[Terminal, ...]
    rush: Terminal | None  # the terminal traffic is steered to around it, if any
    truth: IncidentTruth


def run_span_ms(transactions: int, rate: float) -> int:
    """The expected event-time span of a run: its transactions at its rate."""
    return round(transactions * 1000 / rate)


def draw_schedule(seed: int, start_ms: int, span_ms: int, profile: Profile) -> list[Slot]:
    """The run's incidents in time order: a Poisson process over [start, start + span).

    Depends on the seed, the span and the profile only (never on the fleet or shard).
    """
    weights = [getattr(profile, f"{name}_share") for name in INCIDENT_TYPES]
    if not profile.incidents_per_day > 0 or not sum(weights) > 0 or span_ms <= 0:
        return []
    rng = random.Random(f"debitwatch-incidents-{seed}")
    mean_gap_ms = MS_PER_DAY / profile.incidents_per_day
    low_s = round(profile.incident_min_minutes * 60)
    high_s = max(low_s, round(profile.incident_max_minutes * 60))
    slots: list[Slot] = []
    at = 0.0
    while True:
        at += rng.expovariate(1.0 / mean_gap_ms)
        if at >= span_ms:
            return slots
        incident = rng.choices(INCIDENT_TYPES, weights)[0]
        duration_s = max(1, rng.randint(low_s, high_s))
        start = (start_ms + int(at)) // 1000 * 1000
        slots.append(Slot(len(slots), incident, start, start + duration_s * 1000))


def _preferred(rng: random.Random, ranked: Sequence[T]) -> list[T]:
    """``ranked`` (busiest first) in the order to try: the busiest quarter shuffled,
    then the rest shuffled."""
    cut = max(1, math.ceil(len(ranked) * _BUSY_SHARE))
    busy, rest = list(ranked[:cut]), list(ranked[cut:])
    rng.shuffle(busy)
    rng.shuffle(rest)
    return busy + rest


class _Planner:
    """Picks free, busy targets in one shard's fleet."""

    def __init__(self, fleet: Fleet, rng: random.Random, seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.fleet = fleet
        self.by_merchant: dict[str, list[Terminal]] = {}
        for terminal in fleet.terminals:
            self.by_merchant.setdefault(terminal.merchant.merchant_id, []).append(terminal)
        # Busiest first (most terminals: every terminal is equally popular); fleet order
        # breaks ties. Merchants without a terminal take no traffic.
        order = {merchant.merchant_id: i for i, merchant in enumerate(fleet.merchants)}
        self.merchants = sorted(
            (m for m in fleet.merchants if m.merchant_id in self.by_merchant),
            key=lambda m: (-len(self.by_merchant[m.merchant_id]), order[m.merchant_id]),
        )
        self.taken: dict[int, list[tuple[int, int]]] = {}  # terminal index -> windows

    def _free(self, terminals: Sequence[Terminal], low: int, high: int) -> bool:
        return all(
            high <= start or end <= low
            for terminal in terminals
            for start, end in self.taken.get(terminal.index, ())
        )

    def plan(self, slot: Slot) -> Incident | None:
        low, high = slot.start_ms - MARGIN_MS, slot.end_ms + MARGIN_MS
        merchant_id: str | None = None
        market: str | None = None
        rush: Terminal | None = None
        terminals: list[Terminal] | None = None
        if slot.incident == "merchant_outage":
            for merchant in _preferred(self.rng, self.merchants):
                candidate = self.by_merchant[merchant.merchant_id]
                if self._free(candidate, low, high):
                    merchant_id, terminals = merchant.merchant_id, candidate
                    break
        elif slot.incident == "issuer_slowdown":
            terminals, market = self._slowdown(low, high)
        else:  # every terminal is as popular as any other: any free one, made busy
            candidates = list(self.fleet.terminals)
            self.rng.shuffle(candidates)
            for terminal in candidates:
                if self._free((terminal,), low, high):
                    terminals, rush = [terminal], terminal
                    merchant_id = terminal.merchant.merchant_id
                    break
        if not terminals:
            return None
        for terminal in terminals:
            self.taken.setdefault(terminal.index, []).append((low, high))
        truth = IncidentTruth(
            incident_id=f"inc-{self.seed}-{slot.number}",
            incident=slot.incident,
            scope=SCOPES[slot.incident],
            merchant_id=merchant_id,
            market=market,
            terminal_ids=[terminal.terminal_id for terminal in terminals],
            start=format_utc_second(slot.start_ms // 1000),
            end=format_utc_second(slot.end_ms // 1000),
            probable_cause=CAUSES[slot.incident],
        )
        return Incident(slot, tuple(terminals), rush, truth)

    def _slowdown(self, low: int, high: int) -> tuple[list[Terminal] | None, str | None]:
        """The terminals of up to 5 free merchants of a busy market, and its currency."""
        markets: dict[str, list[Merchant]] = {}
        for merchant in self.merchants:  # busiest first, so each market's list is too
            markets.setdefault(merchant.market.currency, []).append(merchant)
        ranked = sorted(
            markets,
            key=lambda c: -sum(len(self.by_merchant[m.merchant_id]) for m in markets[c]),
        )
        for currency in _preferred(self.rng, ranked):
            free = [
                merchant
                for merchant in markets[currency]
                if self._free(self.by_merchant[merchant.merchant_id], low, high)
            ]
            if not free:
                continue
            pool = free[: max(SLOWDOWN_MAX_MERCHANTS, math.ceil(len(free) / 2))]
            chosen = set(self.rng.sample(range(len(pool)), min(SLOWDOWN_MAX_MERCHANTS, len(pool))))
            terminals = [
                terminal
                for merchant in (pool[i] for i in sorted(chosen))
                for terminal in self.by_merchant[merchant.merchant_id]
            ]
            return sorted(terminals, key=lambda t: t.index), currency
        return None, None


def plan_incidents(
    slots: Sequence[Slot], fleet: Fleet, rng: random.Random, *, seed: int, shard: int, shards: int
) -> list[Incident]:
    """This shard's incidents (slot ``n`` belongs to shard ``n mod shards``) with their
    targets in ``fleet``, in time order."""
    planner = _Planner(fleet, rng, seed)
    planned = (planner.plan(slot) for slot in slots if slot.number % shards == shard)
    return [incident for incident in planned if incident is not None]


class IncidentTraffic:
    """Applies the planned incidents to the traffic, sale by sale (the generator asks
    :meth:`active` for every sale once an incident window is near; otherwise never)."""

    def __init__(
        self,
        incidents: list[Incident],
        *,
        rng: random.Random,
        profile: Profile,
        rate: float,
        terminals: int,
    ) -> None:
        self.incidents = incidents
        self._rng = rng
        # The incident's stories: the cardholder does not pay again in the middle of it.
        self._profile = dataclasses.replace(profile, paid_again_share=0.0)
        wanted = profile.incident_terminal_sales_per_min / 60.0 - rate / terminals
        self._steer = min(_MAX_STEER, max(0.0, wanted / rate))
        self._affected: dict[int, Incident] = {}
        self._rush: list[Terminal] = []
        self._owed: dict[int, float] = {}  # terminal index -> sales owed by the steering
        self.next_edge: float = min(
            (self._window(incident)[0] for incident in incidents), default=math.inf
        )

    def _window(self, incident: Incident) -> tuple[int, int]:
        """When the incident acts on the traffic: its own window, widened for a rush."""
        slot = incident.slot
        if incident.rush is not None and self._steer > 0:
            return slot.start_ms - MARGIN_MS, slot.end_ms + MARGIN_MS
        return slot.start_ms, slot.end_ms

    def active(self, at_ms: int) -> bool:
        """Does any incident act on a sale at ``at_ms``? Then the generator hands the
        sale to :meth:`sale`; if not, it need not ask again before :attr:`next_edge`."""
        if at_ms >= self.next_edge:
            self._refresh(at_ms)
        return bool(self._affected or self._rush)

    def _refresh(self, at_ms: int) -> None:
        affected: dict[int, Incident] = {}
        rush: list[Terminal] = []
        edge = math.inf
        for incident in self.incidents:
            slot = incident.slot
            low, high = self._window(incident)
            if slot.start_ms <= at_ms < slot.end_ms:
                for terminal in incident.terminals:
                    affected[terminal.index] = incident
            if incident.rush is not None and low <= at_ms < high and self._steer > 0:
                rush.append(incident.rush)
            for moment in (low, slot.start_ms, slot.end_ms, high):
                if at_ms < moment < edge:
                    edge = moment
        self._affected, self._rush, self.next_edge = affected, rush, edge
        rushed = {terminal.index for terminal in rush}
        self._owed = {index: debt for index, debt in self._owed.items() if index in rushed}

    def terminal(self, at_ms: int, fleet: Fleet, rng: random.Random) -> Terminal:
        """The terminal of a new sale at ``at_ms``: a busy incident terminal when it is
        owed a sale and idle, else the fleet's usual pick from the traffic's ``rng``.

        Each sale owes every rushed terminal ``steer`` of a sale (no draw: a steady
        share); what a terminal busy with its last sale could not take waits for it (up
        to a few sales), as a queue at a busy till would.
        """
        owed = self._owed
        chosen: Terminal | None = None
        for terminal in self._rush:
            debt = min(_MAX_OWED, owed.get(terminal.index, 0.0) + self._steer)
            if chosen is None and debt >= 1.0 and terminal.busy_until <= at_ms:
                chosen = terminal
                debt -= 1.0
            owed[terminal.index] = debt
        return chosen if chosen is not None else fleet.pick_terminal(rng, at_ms)

    def story(self, builder: Builder, at_ms: int, terminal: Terminal) -> list[Txn] | None:
        """The incident's story for a sale at ``terminal``, or None when no incident
        changes it (the caller then runs the scenario it drew, on ``terminal``)."""
        incident = self._affected.get(terminal.index)
        if incident is None:
            return None
        name = incident.slot.incident
        effect = EFFECTS[name]
        scenario: Scenario
        if self._rng.random() < effect.probability:
            scenario = SCENARIO_FUNCTIONS[effect.scenario]
        elif effect.otherwise is not None:
            scenario = SCENARIO_FUNCTIONS[effect.otherwise]
        else:
            return None
        usual = builder.profile
        builder.profile = self._profile
        builder.next_terminal = terminal
        try:
            story = scenario(builder, at_ms)
        finally:
            builder.profile = usual
            builder.next_terminal = None
        for tx in story:
            tx.scenario += f".{name}"
        return story
