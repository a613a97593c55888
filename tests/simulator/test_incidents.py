"""Fleet-level incidents: in the truth with their scope, the sales inside their windows
follow the incident's scenario, nothing outside changes, reproducible and shard-safe.

Most runs use the ``normal`` profile (no anomaly of its own), so every alert and every
``error`` outcome in the capture can only come from an incident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, TypedDict

import msgspec
import pytest

from models.alerts import Cause, Kind
from models.truth import IncidentTruth
from streams.simulator import Simulation, SimulationConfig, resolve
from streams.simulator.incidents import INCIDENT_TYPES, MARGIN_MS, SCOPES
from streams.simulator.profiles import PROFILES, ProfileError
from streams.simulator.shards import run_sharded
from streams.simulator.writer import write_lines, write_truth
from tests.simulator.helpers import EPOCH, Run, run


class _Frame(msgspec.Struct):
    source: str
    event: dict[str, Any]


_FRAME = msgspec.json.Decoder(_Frame)


class _Fleet(TypedDict):
    rate: float
    merchants: int
    terminals: int
    cards: int


FLEET: _Fleet = {"rate": 2.0, "merchants": 20, "terminals": 100, "cards": 2_000}
MIN_MINUTES, MAX_MINUTES = 4, 8


def only(incident: str, per_day: int = 300) -> tuple[str, ...]:
    """--set values for ``per_day`` incidents of one type, 4-8 minutes long."""
    shares = tuple(f"{name}_share={int(name == incident)}" for name in INCIDENT_TYPES)
    return (
        f"incidents_per_day={per_day}",
        f"incident_min_minutes={MIN_MINUTES}",
        f"incident_max_minutes={MAX_MINUTES}",
        *shares,
    )


def incident_run(incident: str, seed: int = 3) -> Run:
    """30 minutes of a 100-terminal fleet at 2 sales/s with ~6 incidents of one type."""
    return run("normal", transactions=3_600, seed=seed, sets=only(incident), **FLEET)


@dataclasses.dataclass
class Sale:
    terminal_id: str
    merchant_id: str
    currency: str
    t0: datetime
    outcomes: list[str] = dataclasses.field(default_factory=list)
    debits: int = 0
    holds: int = 0
    answered_after: timedelta | None = None  # authorization - transmitted_at (issuer clock)


_SALES: dict[int, dict[tuple[str, str, int], Sale]] = {}


def sales(result: Run) -> dict[tuple[str, str, int], Sale]:
    """Every transaction of the capture (redeliveries counted once); decoded once per
    run (``run`` caches the runs themselves)."""
    if id(result) not in _SALES:
        _SALES[id(result)] = _sales(result)
    return _SALES[id(result)]


def _events(result: Run) -> Iterator[tuple[tuple[str, str, int], dict[str, Any], bytes]]:
    """(key, event, raw line) of every transaction event, quickly: the capture's format
    is checked by the strict decoder in test_capture_format."""
    for line in result.lines:
        event = _FRAME.decode(line).event
        if event["type"] != "watermark":
            sent = datetime.fromisoformat(event["transmitted_at"])
            key = (event["terminal_id"], event["stan"], int(sent.timestamp()))
            yield key, event, line


def _sales(result: Run) -> dict[tuple[str, str, int], Sale]:
    found: dict[tuple[str, str, int], Sale] = {}
    seen: set[str] = set()
    for key, event, _ in _events(result):
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        sale = found.get(key)
        if sale is None:
            t0 = EPOCH + timedelta(seconds=key[2])
            sale = Sale(event["terminal_id"], event["merchant_id"], event["currency"], t0)
            found[key] = sale
        kind = event["type"]
        if kind == "outcome":
            sale.outcomes.append(event["outcome"])
        elif kind == "debit":
            sale.debits += 1
        elif kind == "hold":
            sale.holds += 1
        elif kind == "authorization":
            answered = datetime.fromisoformat(event["occurred_at"])
            sale.answered_after = answered - datetime.fromisoformat(event["transmitted_at"])
    return found


def window(incident: IncidentTruth) -> tuple[datetime, datetime]:
    parse = datetime.fromisoformat
    return parse(incident.start.replace("Z", "+00:00")), parse(incident.end.replace("Z", "+00:00"))


def inside(result: Run, incident: IncidentTruth) -> list[Sale]:
    start, end = window(incident)
    terminals = set(incident.terminal_ids)
    return [
        sale
        for sale in sales(result).values()
        if sale.terminal_id in terminals and start <= sale.t0 < end
    ]


@pytest.mark.parametrize("incident", INCIDENT_TYPES)
def test_incidents_are_in_the_truth_with_their_scope(incident: str) -> None:
    result = incident_run(incident)
    incidents = result.incidents
    assert len(incidents) >= 2
    merchant_of = {sale.terminal_id: sale.merchant_id for sale in sales(result).values()}
    currency_of = {sale.terminal_id: sale.currency for sale in sales(result).values()}
    for found in incidents:
        assert found.kind == Kind.TERMINAL_INCIDENT
        assert re.fullmatch(r"inc-3-\d+", found.incident_id)
        assert found.incident == incident
        assert found.scope == SCOPES[incident]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", found.start)
        start, end = window(found)
        assert timedelta(minutes=MIN_MINUTES) <= end - start <= timedelta(minutes=MAX_MINUTES)
        terminals = found.terminal_ids
        assert terminals and len(set(terminals)) == len(terminals)
        merchants = {merchant_of[terminal] for terminal in terminals}
        if found.scope == "merchant":
            assert merchants == {found.merchant_id}
            # every terminal of the merchant (the capture shows all of them)
            assert set(terminals) == {t for t, m in merchant_of.items() if m == found.merchant_id}
        elif found.scope == "market":
            assert found.market is not None and found.merchant_id is None
            assert {currency_of[terminal] for terminal in terminals} == {found.market}
            assert 1 <= len(merchants) <= 5
        else:
            assert len(terminals) == 1 and merchants == {found.merchant_id}
    expected_cause = {
        "merchant_outage": Cause.NETWORK_FAILURE,
        "issuer_slowdown": Cause.ISSUER_LATE_RESPONSE,
        "faulty_terminal": Cause.TERMINAL_FAULT,
        "duplicate_burst": Cause.DUPLICATE_PROCESSING,
    }[incident]
    assert {found.probable_cause for found in incidents} == {expected_cause}


def _timed_out(sale: Sale) -> bool:
    return sale.outcomes in (["timeout"], [])  # a network_failure may leave no outcome at all


# What the sales in an incident's window look like: (name, per-sale test, least share).
PATTERNS = {
    "merchant_outage": [
        ("timeout", _timed_out, 0.9),
        ("debited (ghost)", lambda s: _timed_out(s) and s.debits + s.holds > 0, 0.25),
    ],
    "issuer_slowdown": [
        ("timeout", lambda s: s.outcomes == ["timeout"], 0.9),
        (
            "answered after the timeout",
            lambda s: s.answered_after is not None and s.answered_after > timedelta(seconds=20),
            0.5,
        ),
    ],
    "faulty_terminal": [("error after approval", lambda s: s.outcomes == ["error"], 0.5)],
    "duplicate_burst": [("debited twice", lambda s: s.debits >= 2, 0.5)],
}


@pytest.mark.parametrize("incident", INCIDENT_TYPES)
def test_sales_in_the_window_follow_the_incident(incident: str) -> None:
    result = incident_run(incident)
    hit = [sale for found in result.incidents for sale in inside(result, found)]
    assert len(hit) >= 30
    for name, test, least in PATTERNS[incident]:
        share = sum(map(test, hit)) / len(hit)
        assert share >= least, f"{name}: {share:.2f} of {len(hit)} sales"
    # The affected sales' own truth: the incident's cause, the scenario names it.
    causes = {Cause.NETWORK_FAILURE} if incident == "duplicate_burst" else set()
    causes.add(result.incidents[0].probable_cause)
    assert result.truth
    for record in result.truth:
        assert record.scenario.endswith(f".{incident}")
        assert record.probable_cause in causes
    if incident == "faulty_terminal":  # the ghosts: approved, debited, then "error"
        assert all(s.debits + s.holds == 1 for s in hit if s.outcomes == ["error"])


@pytest.mark.parametrize("incident", INCIDENT_TYPES)
def test_nothing_changes_outside_the_windows(incident: str) -> None:
    result = incident_run(incident)
    windows = defaultdict(list)
    for found in result.incidents:
        for terminal in found.terminal_ids:
            windows[terminal].append(window(found))

    def in_window(terminal: str, t0: datetime) -> bool:
        return any(start <= t0 < end for start, end in windows[terminal])

    for record in result.truth:  # normal traffic raises nothing by itself
        second = datetime.fromisoformat(record.transmitted_at.replace("Z", "+00:00"))
        assert in_window(record.terminal_id, second), record
    for sale in sales(result).values():
        if not in_window(sale.terminal_id, sale.t0):
            assert "error" not in sale.outcomes
            assert sale.debits <= 1
            assert sale.answered_after is None or sale.answered_after < timedelta(seconds=5)


def _lines_by_sale(result: Run) -> dict[tuple[str, str, int], list[bytes]]:
    by_key: dict[tuple[str, str, int], list[bytes]] = defaultdict(list)
    for key, _, line in _events(result):
        by_key[key].append(line)
    return by_key


def test_sales_before_the_first_incident_are_those_of_a_run_without_incidents() -> None:
    with_incidents = incident_run("faulty_terminal")
    without = run("normal", transactions=3_600, seed=3, **FLEET)
    first = min(window(found)[0] for found in with_incidents.incidents)
    quiet_until = first - timedelta(milliseconds=MARGIN_MS)  # steering starts this early
    before = {
        key: lines
        for key, lines in _lines_by_sale(with_incidents).items()
        if EPOCH + timedelta(seconds=key[2]) < quiet_until
    }
    expected = {
        key: lines
        for key, lines in _lines_by_sale(without).items()
        if EPOCH + timedelta(seconds=key[2]) < quiet_until
    }
    assert len(before) > 100
    assert before == expected


def _digest(profile: str, seed: int, sets: tuple[str, ...] = ()) -> str:
    simulation = Simulation(
        SimulationConfig(profile=resolve(profile, sets), transactions=3_000, seed=seed, **FLEET)
    )
    out = io.BytesIO()
    write_lines(simulation.lines(), out)
    write_truth(simulation.truth, out, simulation.incidents)
    return hashlib.sha256(out.getvalue()).hexdigest()


# sha256 of capture + truth as the simulator wrote them before incidents existed.
BEFORE_INCIDENTS = {
    ("normal", 3): "c7c04e935d8286fe6bc638058ca8deaebee8f1e97c777b5307a642fbed897c1d",
    ("default", 4): "1c372a40146893777c6d3d317fb280e278716b74a097c846172de71dd0a0c080",
    ("storm", 5): "0782163789a9bb182090d68d719feaf6a0ebcfa93bb83840ec3a32ae0b5ef501",
}


@pytest.mark.parametrize(("profile", "seed"), list(BEFORE_INCIDENTS))
def test_without_incidents_the_output_is_byte_for_byte_what_it_was(profile: str, seed: int) -> None:
    assert _digest(profile, seed, ("incidents_per_day=0",)) == BEFORE_INCIDENTS[profile, seed]
    if profile != "storm":  # no incidents by default
        assert _digest(profile, seed) == BEFORE_INCIDENTS[profile, seed]


def test_storm_injects_incidents_and_zero_shares_turn_them_off() -> None:
    assert PROFILES["storm"].incidents_per_day == 24
    assert _digest("storm", 5) != BEFORE_INCIDENTS["storm", 5]  # this run has an incident
    shares_off = tuple(f"{name}_share=0" for name in INCIDENT_TYPES)
    with pytest.raises(ProfileError, match="incident share"):
        resolve("storm", shares_off)
    assert _digest("storm", 5, (*shares_off, "incidents_per_day=0")) == BEFORE_INCIDENTS["storm", 5]


def test_same_seed_same_incidents_other_seed_others() -> None:
    sets = only("merchant_outage")
    first = run("normal", transactions=1_200, seed=11, sets=sets, **FLEET)
    again = run("normal", transactions=1_200, seed=11, sets=sets, verify_all=False, **FLEET)
    other = run("normal", transactions=1_200, seed=12, sets=sets, **FLEET)
    assert first.incidents and first.incidents == again.incidents
    assert first.capture == again.capture and first.truth_bytes == again.truth_bytes
    assert [i.start for i in other.incidents] != [i.start for i in first.incidents]


def test_incidents_never_overlap_on_a_terminal() -> None:
    sets = (*only("faulty_terminal", per_day=5_000)[:3], "merchant_outage_share=1")
    result = run("normal", transactions=3_600, seed=4, sets=sets, **FLEET)
    margin = timedelta(milliseconds=MARGIN_MS)
    spans = defaultdict(list)
    for found in result.incidents:
        start, end = window(found)
        for terminal in found.terminal_ids:
            spans[terminal].append((start - margin, end + margin))
    assert len(result.incidents) > 20
    assert max(int(i.incident_id.rsplit("-", 1)[1]) for i in result.incidents) > len(
        result.incidents
    )  # crowded: some incidents found no free target and were dropped
    for terminal, taken in spans.items():
        taken.sort()
        for (_, end), (start, _) in pairwise(taken):
            assert end <= start, terminal


def test_shards_play_the_one_shard_schedule_on_their_own_terminals() -> None:
    profile = resolve("normal", only("duplicate_burst", per_day=400))
    config = SimulationConfig(profile=profile, transactions=2_400, seed=8, **FLEET)
    one = Simulation(config)
    out_a, out_b = io.BytesIO(), io.BytesIO()
    _, truth_a, incidents_a = run_sharded(config, 2, out_a)
    _, truth_b, incidents_b = run_sharded(config, 2, out_b)
    assert (out_a.getvalue(), truth_a, incidents_a) == (out_b.getvalue(), truth_b, incidents_b)

    def schedule(incidents: list[IncidentTruth]) -> list[tuple[str, str, str, str]]:
        return [(i.incident_id, i.incident, i.start, i.end) for i in incidents]

    assert len(one.incidents) >= 3
    assert schedule(incidents_a) == schedule(one.incidents)
    for found in incidents_a:  # incident n is played by shard n mod 2, on its terminals
        number = int(found.incident_id.rsplit("-", 1)[1])
        assert all(int(t[3:]) % 2 == number % 2 for t in found.terminal_ids)
    ghosts = [record for record in truth_a if record.scenario.endswith(".duplicate_burst")]
    assert ghosts


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("incidents_per_day=5", "incident_min_minutes=30"), "incident_min_minutes <="),
        (("incidents_per_day=5", "incident_min_minutes=0"), "0 < incident_min_minutes"),
        (("incidents_per_day=-1",), "out of range"),
    ],
)
def test_bad_incident_knobs_are_clear_errors(sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        resolve("default", sets)
