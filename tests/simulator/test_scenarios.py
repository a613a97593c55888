"""Each anomaly, generated in isolation with --set, yields exactly its truth, and its
events show the evidence pattern a scorer is meant to recognise."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import pytest

from models.alerts import Cause, Kind
from models.events import (
    IssuerAuthorization,
    IssuerDebit,
    IssuerHold,
    TerminalOutcome,
    TerminalRequest,
    TerminalReversal,
    TransactionEvent,
)
from tests.simulator.helpers import QUIET_SHARES, Run, decoded, key_of, run, utc_second

UD, RN, AN, AM, DD = (
    Kind.UNMATCHED_DEBIT,
    Kind.REVERSAL_NOT_APPLIED,
    Kind.TERMINAL_APPROVED_NO_DEBIT,
    Kind.AMOUNT_MISMATCH,
    Kind.DUPLICATE_DEBIT,
)


@dataclass(frozen=True)
class Case:
    sets: tuple[str, ...]
    label: str  # the truth's scenario name
    alerts: frozenset[tuple[Kind, Cause]]  # per transaction
    paid_again: bool = False


CASES = {
    "network_failure": Case(
        ("network_failure=0.3",), "network_failure", frozenset({(UD, Cause.NETWORK_FAILURE)})
    ),
    "network_failure/no outcome": Case(
        ("network_failure=0.3", "no_outcome_share=1"),
        "network_failure.no_outcome",
        frozenset({(UD, Cause.NETWORK_FAILURE)}),
    ),
    "network_failure/paid again": Case(
        ("network_failure=0.3", "paid_again_share=1"),
        "network_failure",
        frozenset({(UD, Cause.NETWORK_FAILURE)}),
        paid_again=True,
    ),
    "network_failure/stand-in": Case(
        ("network_failure_standin=0.3",),
        "network_failure_standin",
        frozenset({(AN, Cause.NETWORK_FAILURE)}),
    ),
    "issuer_late_response": Case(
        ("issuer_late_response=0.3",),
        "issuer_late_response",
        frozenset({(UD, Cause.ISSUER_LATE_RESPONSE)}),
    ),
    "issuer_late_response/paid again": Case(
        ("issuer_late_response=0.3", "paid_again_share=1"),
        "issuer_late_response",
        frozenset({(UD, Cause.ISSUER_LATE_RESPONSE)}),
        paid_again=True,
    ),
    "terminal_fault": Case(
        ("terminal_fault=0.3",), "terminal_fault", frozenset({(UD, Cause.TERMINAL_FAULT)})
    ),
    "terminal_fault/false approval": Case(
        ("terminal_fault_false_approval=0.3",),
        "terminal_fault_false_approval",
        frozenset({(AN, Cause.TERMINAL_FAULT)}),
    ),
    "reversal_lost": Case(
        ("reversal_lost=0.3",), "reversal_lost", frozenset({(RN, Cause.REVERSAL_LOST)})
    ),
    "account_restriction": Case(
        ("account_restriction=0.3",),
        "account_restriction",
        frozenset({(UD, Cause.ACCOUNT_RESTRICTION)}),
    ),
    "merchant_configuration": Case(
        ("merchant_configuration=0.3",),
        "merchant_configuration",
        frozenset({(AM, Cause.MERCHANT_CONFIGURATION)}),
    ),
    "operator_error/amount": Case(
        ("operator_error_amount=0.3", "operator_wrong_request_share=0.5"),
        "operator_error_amount",
        frozenset({(AM, Cause.OPERATOR_ERROR)}),
    ),
    "operator_error/cancelled": Case(
        ("operator_error_cancelled=0.3",),
        "operator_error_cancelled",
        frozenset({(UD, Cause.OPERATOR_ERROR)}),
    ),
    "payment_method_switch": Case(
        ("payment_method_switch=0.3",),
        "payment_method_switch",
        frozenset({(UD, Cause.PAYMENT_METHOD_SWITCH)}),
        paid_again=True,
    ),
    "duplicate_processing": Case(
        ("duplicate_processing=0.3",),
        "duplicate_processing",
        frozenset({(DD, Cause.DUPLICATE_PROCESSING)}),
    ),
    "duplicate_processing/timed out": Case(
        ("duplicate_processing=0.3", "duplicate_timeout_share=1"),
        "duplicate_processing.timeout",
        frozenset({(UD, Cause.NETWORK_FAILURE), (DD, Cause.DUPLICATE_PROCESSING)}),
    ),
}


def isolated(case: Case, seed: int = 1) -> Run:
    return run("normal", transactions=1_000, seed=seed, sets=QUIET_SHARES + case.sets)


@pytest.mark.parametrize("name", list(CASES))
def test_isolated_scenario_yields_exactly_its_truth(name):
    case = CASES[name]
    result = isolated(case)
    per_txn: dict[tuple[str, str, str], set[tuple[Kind, Cause]]] = defaultdict(set)
    for record in result.truth:
        assert record.scenario == case.label
        assert record.paid_again is case.paid_again
        per_txn[(record.terminal_id, record.stan, record.transmitted_at)].add(
            (record.kind, record.probable_cause)
        )
    assert len(per_txn) == result.stats.scenarios[case.label] > 200
    assert all(alerts == case.alerts for alerts in per_txn.values())


@pytest.mark.parametrize(
    "sets",
    [
        ("network_failure=0.3", "resolved_late_share=1"),
        ("issuer_late_response=0.3", "resolved_late_share=1"),
        ("account_restriction=0.3", "resolved_late_share=1"),
        ("payment_method_switch=0.3", "resolved_late_share=1"),
        ("late_feed=0.3",),
    ],
)
def test_resolved_late_ghosts_and_late_feeds_are_not_in_the_truth(sets):
    result = run("normal", transactions=1_000, sets=QUIET_SHARES + sets)
    assert result.truth == []
    assert any(".resolved_late" in name or "late_feed" in name for name in result.stats.scenarios)


# -- evidence patterns -------------------------------------------------------------------


Key = tuple[str, str, int]


def transactions(lines: list[bytes]) -> dict[Key, list[TransactionEvent]]:
    """key -> events of the key, de-duplicated."""
    keys: dict[Key, dict[str, TransactionEvent]] = defaultdict(dict)
    for item in decoded(lines):
        if isinstance(item.event, TransactionEvent):
            keys[key_of(item.event)][item.event.event_id] = item.event
    return {key: list(events.values()) for key, events in keys.items()}


def truth_transactions(
    case: Case, seed: int = 1
) -> tuple[dict[Key, list[TransactionEvent]], dict[Key, list[TransactionEvent]]]:
    result = isolated(case, seed)
    txns = transactions(result.lines)
    keys = {(t.terminal_id, t.stan, t.transmitted_at): t for t in result.truth}
    ghosts = {key: txns[key] for key in txns if (key[0], key[1], utc_second(key[2])) in keys}
    return txns, ghosts


E = TypeVar("E", bound=TransactionEvent)


def one(events: list[TransactionEvent], kind: type[E]) -> E:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, (kind, events)
    return found[0]


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def test_network_failure_issuer_answers_promptly_terminal_times_out_on_its_clock():
    _, ghosts = truth_transactions(CASES["network_failure"])
    for events in ghosts.values():
        request = one(events, TerminalRequest)
        outcome = one(events, TerminalOutcome)
        authorization = one(events, IssuerAuthorization)
        assert authorization.approved
        # transmitted_at may be truncated to its second: up to 1 s more from there.
        assert 0.3 <= seconds(authorization.occurred_at - request.transmitted_at) <= 4.0
        assert outcome.outcome == "timeout"
        assert 20 <= seconds(outcome.occurred_at - request.occurred_at) <= 60
        assert not [e for e in events if isinstance(e, TerminalReversal)]


def test_issuer_late_response_answers_after_the_terminal_gave_up():
    _, ghosts = truth_transactions(CASES["issuer_late_response"])
    for events in ghosts.values():
        request = one(events, TerminalRequest)
        outcome = one(events, TerminalOutcome)
        authorization = one(events, IssuerAuthorization)
        waited = seconds(outcome.occurred_at - request.occurred_at)
        latency = seconds(authorization.occurred_at - request.transmitted_at)
        assert outcome.outcome == "timeout"
        assert waited + 1 <= latency <= waited + 41  # + the truncated second


def test_terminal_fault_shows_an_error_with_a_local_reason():
    _, ghosts = truth_transactions(CASES["terminal_fault"])
    for events in ghosts.values():
        outcome = one(events, TerminalOutcome)
        assert outcome.outcome == "error" and outcome.reason
        assert one(events, IssuerAuthorization).approved


def test_account_restriction_declines_then_posts_the_money():
    _, ghosts = truth_transactions(CASES["account_restriction"])
    for events in ghosts.values():
        authorization = one(events, IssuerAuthorization)
        assert not authorization.approved
        assert authorization.response_code in {"51", "57", "61", "62"}
        assert one(events, TerminalOutcome).outcome == "declined"
        money = [e for e in events if isinstance(e, IssuerDebit | IssuerHold)]
        assert len(money) == 1
        assert 1 <= seconds(money[0].occurred_at - authorization.occurred_at) <= 60


def test_merchant_configuration_surcharge_is_more_by_at_most_ten_percent():
    _, ghosts = truth_transactions(CASES["merchant_configuration"])
    for events in ghosts.values():
        shown = one(events, TerminalOutcome).amount_minor
        for money in (e for e in events if isinstance(e, IssuerDebit | IssuerHold)):
            assert shown < money.amount_minor <= shown * 1.1


def test_operator_error_amount_is_x10_div10_or_transposed():
    _, ghosts = truth_transactions(CASES["operator_error/amount"])
    for events in ghosts.values():
        shown = one(events, TerminalOutcome).amount_minor
        taken = next(e for e in events if isinstance(e, IssuerDebit | IssuerHold)).amount_minor
        digits, keyed = str(shown), str(taken)
        transposed = (
            len(digits) == len(keyed)
            and sorted(digits) == sorted(keyed)
            and sum(a != b for a, b in zip(digits, keyed, strict=True)) == 2
        )
        assert taken in (shown * 10, shown // 10) or transposed


def _next_sale(
    txns: dict[Key, list[TransactionEvent]], key: Key, *, within: tuple[float, float]
) -> list[TransactionEvent]:
    """The transaction at the same terminal with the next STAN, within the time span."""
    terminal, stan, second = key
    following = f"{int(stan) % 999_999 + 1:06d}"
    found = [
        events
        for (t, s, sec), events in txns.items()
        if t == terminal and s == following and within[0] <= sec - second <= within[1]
    ]
    assert len(found) == 1, key
    return found[0]


def test_payment_method_switch_second_card_pays_the_same_amount_next_stan():
    txns, ghosts = truth_transactions(CASES["payment_method_switch"])
    for key, events in ghosts.items():
        cancelled = one(events, TerminalOutcome)
        assert cancelled.outcome == "cancelled"
        follow = _next_sale(txns, key, within=(20, 200))
        approved = one(follow, TerminalOutcome)
        assert approved.outcome == "approved"
        assert approved.card_token != cancelled.card_token
        assert (approved.amount_minor, approved.currency) == (
            cancelled.amount_minor,
            cancelled.currency,
        )


def test_paid_again_is_the_same_card_and_amount_next_stan():
    txns, ghosts = truth_transactions(CASES["network_failure/paid again"])
    for key, events in ghosts.items():
        request = one(events, TerminalRequest)
        follow = _next_sale(txns, key, within=(30, 250))
        approved = one(follow, TerminalOutcome)
        assert approved.outcome == "approved"
        assert (approved.card_token, approved.amount_minor) == (
            request.card_token,
            request.amount_minor,
        )


def test_operator_error_cancelled_has_no_follow_up_at_the_terminal():
    txns, ghosts = truth_transactions(CASES["operator_error/cancelled"])
    for (terminal, _, second), events in ghosts.items():
        assert one(events, TerminalOutcome).outcome == "cancelled"
        card = one(events, TerminalRequest).card_token
        amount = one(events, TerminalRequest).amount_minor
        same_amount_elsewhere = [
            key
            for key, other in txns.items()
            if key[0] == terminal
            and 0 < key[2] - second <= 300
            and one(other, TerminalRequest).amount_minor == amount
            and one(other, TerminalRequest).card_token != card
        ]
        assert not same_amount_elsewhere


def test_duplicate_processing_posts_two_distinct_debits():
    _, ghosts = truth_transactions(CASES["duplicate_processing"])
    for events in ghosts.values():
        debits = [e for e in events if isinstance(e, IssuerDebit)]
        assert len(debits) == 2
        assert debits[0].event_id != debits[1].event_id
        assert 1 <= abs(seconds(debits[1].occurred_at - debits[0].occurred_at)) <= 90
