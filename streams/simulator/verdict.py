"""The contract's verdict rules, applied to a simulated transaction's final events.

The ground truth must say what CONTRACT §1.2 and §2 make of the events we actually
emit, not what a scenario *meant* to do. So the generator judges every transaction
with this small, independent re-statement of the rules and refuses to write a truth
record the scenario did not intend (or to miss one it did): a scenario that drifts from
the contract fails loudly instead of silently teaching the scorer a wrong answer.

Rules (on the final, de-duplicated set of events of one key):

* ``debited = sum(debit) - sum(refund) - sum(issuer reversal)``,
  ``held = sum(hold) - sum(hold_release) - sum(issuer reversal)``;
  net = debited if the key has any debit, else held; never below 0.
* completed = latest terminal ``outcome`` (by occurred_at) is ``approved`` and the
  terminal sent no ``reversal``.
* unmatched_debit: net > 0, not completed, no terminal reversal -> at risk: net.
* reversal_not_applied: net > 0 and a terminal reversal -> at risk: net.
* terminal_approved_no_debit: completed and net == 0 -> at risk: 0.
* amount_mismatch: completed, net > 0, a debit or hold differs from the terminal's
  amount or currency -> at risk: max(0, net - terminal amount) (the overcharge).
* duplicate_debit: count(debit) - count(issuer reversal) - count(refund) >= 2
  -> at risk: debited minus one debit.

The terminal's amount is the amount of its latest outcome (what it showed), falling
back to the request's. (No scenario emits two outcomes at the same instant, so the
core's tie-break by event id never comes into play here.) Currencies never differ
within a simulated key, so the check compares amounts only.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.alerts import Kind
from streams.simulator.transaction import Ev


def judge(events: Iterable[Ev]) -> dict[Kind, int]:
    """Kinds that fire at the end of the capture, each with its ``at_risk_minor``.

    >>> judge([(0, True, "request", 500, "", ""),
    ...        (9, False, "debit", 500, "", ""),
    ...        (30, True, "outcome", 500, "timeout", "")])
    {<Kind.UNMATCHED_DEBIT: 'unmatched_debit'>: 500}
    """
    debit_sum = hold_sum = release_sum = refund_sum = issuer_reversal_sum = 0
    debits: list[int] = []
    holds: list[int] = []
    refunds = issuer_reversals = 0
    terminal_reversal = False
    latest_outcome = ""
    latest_at = -1
    terminal_amount = -1
    for at, by_terminal, kind, amount, detail, _ in events:
        if by_terminal:
            if kind == "outcome":
                if at >= latest_at:
                    latest_at = at
                    latest_outcome = detail
                    terminal_amount = amount
            elif kind == "reversal":
                terminal_reversal = True
            elif kind == "request" and terminal_amount < 0:
                terminal_amount = amount
        elif kind == "debit":
            debit_sum += amount
            debits.append(amount)
        elif kind == "hold":
            hold_sum += amount
            holds.append(amount)
        elif kind == "hold_release":
            release_sum += amount
        elif kind == "refund":
            refund_sum += amount
            refunds += 1
        elif kind == "reversal":
            issuer_reversal_sum += amount
            issuer_reversals += 1

    debited = debit_sum - refund_sum - issuer_reversal_sum
    held = hold_sum - release_sum - issuer_reversal_sum
    net = max(0, debited if debits else held)
    completed = latest_outcome == "approved" and not terminal_reversal

    fired: dict[Kind, int] = {}
    if net > 0 and not completed and not terminal_reversal:
        fired[Kind.UNMATCHED_DEBIT] = net
    if net > 0 and terminal_reversal:
        fired[Kind.REVERSAL_NOT_APPLIED] = net
    if completed and net == 0:
        fired[Kind.TERMINAL_APPROVED_NO_DEBIT] = 0
    if completed and net > 0:
        moved = debits + holds
        if any(amount != terminal_amount for amount in moved):
            fired[Kind.AMOUNT_MISMATCH] = max(0, net - terminal_amount)
    if len(debits) - issuer_reversals - refunds >= 2:
        fired[Kind.DUPLICATE_DEBIT] = max(0, debited - debits[0])
    return fired
