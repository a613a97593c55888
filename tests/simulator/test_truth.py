"""The truth file says exactly what CONTRACT §1.2/§2 make of the capture's final events.

The oracle here is written again from the contract, on *decoded* events (instants, not
the simulator's internals), so it checks the simulator's own verdict module too.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from models.alerts import Kind, alert_id
from models.events import (
    IssuerDebit,
    IssuerHold,
    IssuerHoldRelease,
    IssuerRefund,
    IssuerReversal,
    TerminalOutcome,
    TerminalRequest,
    TerminalReversal,
    TransactionEvent,
)
from streams.simulator.profiles import ANOMALY_SCENARIOS
from tests.simulator.helpers import decoded, key_of, run, utc_second


def contract_verdicts(lines: list[bytes]) -> dict[str, tuple[Kind, int]]:
    """alert_id -> (kind, at_risk) of every alert firing on the final events."""
    keys: dict[tuple[str, str, int], dict[str, TransactionEvent]] = defaultdict(dict)
    for item in decoded(lines):
        if isinstance(item.event, TransactionEvent):
            keys[key_of(item.event)][item.event.event_id] = item.event  # dedup by id
    firing: dict[str, tuple[Kind, int]] = {}
    for (terminal_id, stan, second), by_id in keys.items():
        events = list(by_id.values())

        def total(kind: type, events: list[TransactionEvent] = events) -> int:
            return sum(e.amount_minor for e in events if type(e) is kind)

        def count(kind: type, events: list[TransactionEvent] = events) -> int:
            return sum(1 for e in events if type(e) is kind)

        debits = [e for e in events if type(e) is IssuerDebit]
        holds = [e for e in events if type(e) is IssuerHold]
        debited = total(IssuerDebit) - total(IssuerRefund) - total(IssuerReversal)
        held = total(IssuerHold) - total(IssuerHoldRelease) - total(IssuerReversal)
        net = max(0, debited if debits else held)
        reversal = count(TerminalReversal) > 0
        outcomes = sorted(
            (e for e in events if isinstance(e, TerminalOutcome)), key=lambda e: e.occurred_at
        )
        requests = [e for e in events if isinstance(e, TerminalRequest)]
        shown = outcomes[-1] if outcomes else requests[0]
        completed = bool(outcomes) and outcomes[-1].outcome == "approved" and not reversal
        live = len(debits) - count(IssuerReversal) - count(IssuerRefund)
        kinds: dict[Kind, int] = {}
        if net > 0 and not completed and not reversal:
            kinds[Kind.UNMATCHED_DEBIT] = net
        if net > 0 and reversal:
            kinds[Kind.REVERSAL_NOT_APPLIED] = net
        if completed and net == 0:
            kinds[Kind.TERMINAL_APPROVED_NO_DEBIT] = 0
        if completed and net > 0:
            moved = debits + holds
            if any(
                m.amount_minor != shown.amount_minor or m.currency != shown.currency for m in moved
            ):
                kinds[Kind.AMOUNT_MISMATCH] = max(0, net - shown.amount_minor)
        if live >= 2:
            first = min(debits, key=lambda e: e.occurred_at)
            kinds[Kind.DUPLICATE_DEBIT] = debited - first.amount_minor
        for kind, at_risk in kinds.items():
            firing[alert_id(terminal_id, stan, second, kind)] = (kind, at_risk)
    return firing


@pytest.mark.parametrize("profile", ["default", "storm"])
@pytest.mark.parametrize("seed", [1, 2])
def test_truth_is_the_contracts_verdict_on_the_final_events(profile, seed):
    result = run(profile, seed=seed)
    expected = contract_verdicts(result.lines)
    actual = {t.alert_id: (t.kind, t.at_risk_minor) for t in result.truth}
    assert actual == expected
    assert len(actual) > (20 if profile == "default" else 300)


def test_truth_alert_ids_are_unique_and_well_formed():
    truth = run("storm", transactions=4_000).truth
    assert len({t.alert_id for t in truth}) == len(truth)
    for record in truth:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record.transmitted_at)
        assert re.fullmatch(r"\d{6}", record.stan)
        assert record.card_token.startswith("tok_")
        assert record.scenario.split(".")[0] in ANOMALY_SCENARIOS


def test_truth_names_the_transaction_as_the_capture_does():
    result = run("storm")
    by_key = {}
    for item in decoded(result.lines):
        if isinstance(item.event, TransactionEvent):
            by_key[key_of(item.event)] = item.event
    for record in result.truth:
        second = next(
            key[2]
            for key in by_key
            if key[:2] == (record.terminal_id, record.stan)
            and utc_second(key[2]) == record.transmitted_at
        )
        event = by_key[(record.terminal_id, record.stan, second)]
        assert (event.merchant_id, event.card_token) == (record.merchant_id, record.card_token)
        assert record.alert_id == alert_id(record.terminal_id, record.stan, second, record.kind)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_normal_profile_has_an_empty_truth(seed):
    result = run("normal", seed=seed, transactions=3_000)
    assert result.truth == []
    assert contract_verdicts(result.lines) == {}
