"""The two folds of a log agree with each other: ``quiet`` is a safe shortcut of ``tally``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.config import DetectionConfig
from models.events import Step
from models.transaction import Txn
from models.verdicts import fold, holding, quiet, tally

CONFIG = DetectionConfig()

records = st.lists(
    st.tuples(
        st.sampled_from(list(Step)),
        st.integers(0, 50),  # occurred, seconds
        st.sampled_from([0, 1_000, 1_100]),  # amount
        st.sampled_from([978, 840]),  # EUR, USD
    ),
    max_size=7,
)


def txn_of(log: list[tuple[Step, int, int, int]]) -> Txn:
    txn = Txn("T-1/000001/0", "M-1", "tok")
    for index, (step, at, amount, currency) in enumerate(log):
        txn.append(step, at * 1_000_000, amount, currency, None, f"e{index}")
    return txn


@given(records)
def test_quiet_never_hides_a_kind_that_holds(log: list[tuple[Step, int, int, int]]) -> None:
    txn = txn_of(log)
    if quiet(txn):
        assert not any(holding(tally(txn), CONFIG))


def test_quiet_recognises_matched_and_clean_sales() -> None:
    matched = [
        (Step.REQUEST, 0, 1_000, 978),
        (Step.AUTH_APPROVED, 1, 1_000, 978),
        (Step.DEBIT, 1, 1_000, 978),
        (Step.APPROVED, 2, 1_000, 978),
    ]
    dual = [
        (Step.REQUEST, 0, 1_000, 978),
        (Step.HOLD, 1, 1_000, 978),
        (Step.APPROVED, 2, 1_000, 978),
    ]
    clean = [
        (Step.REQUEST, 0, 1_000, 978),
        (Step.AUTH_DECLINED, 1, 1_000, 978),
        (Step.DECLINED, 2, 1_000, 978),
    ]
    assert quiet(txn_of(matched)) and quiet(txn_of(dual)) and quiet(txn_of(clean))
    mismatched = [*matched[:2], (Step.DEBIT, 1, 1_100, 978), matched[3]]
    twice = [*matched, (Step.DEBIT, 3, 1_000, 978)]
    assert not quiet(txn_of(mismatched)) and not quiet(txn_of(twice))


@given(records)
def test_fold_details_agree_with_the_log(log: list[tuple[Step, int, int, int]]) -> None:
    txn = txn_of(log)
    facts = fold(txn)
    assert sorted(facts.evidence_ids()) == sorted(txn.event_ids)
    debits = [(at, amount) for step, at, amount, _ in log if step is Step.DEBIT]
    if debits:
        earliest = min(at for at, _ in debits)
        assert facts.first_debit is not None
        assert facts.first_debit[0] == earliest * 1_000_000
        assert facts.first_debit[1] in {amount for at, amount in debits if at == earliest}
    outcomes = [at for step, at, _, _ in log if Step.APPROVED <= step <= Step.CANCELLED]
    assert facts.outcome_us == (max(outcomes) * 1_000_000 if outcomes else None)


near_matched = st.lists(
    st.tuples(
        st.sampled_from(
            [
                Step.REQUEST,
                Step.APPROVED,
                Step.AUTH_APPROVED,
                Step.DEBIT,
                Step.HOLD,
                Step.HOLD_RELEASE,
                Step.REFUND,
                Step.ISSUER_REVERSAL,
                Step.TIMEOUT,
            ]
        ),
        st.integers(0, 5),
        st.sampled_from([0, 1_000, 1_000, 1_000, 1_100]),
        st.sampled_from([978, 978, 978, 840]),
    ),
    min_size=2,
    max_size=6,
)


@given(near_matched)
def test_quiet_never_hides_a_kind_on_near_matched_logs(
    log: list[tuple[Step, int, int, int]],
) -> None:
    """The shapes quiet() accepts, and their near misses, drawn much more often."""
    txn = txn_of(log)
    if quiet(txn):
        assert not any(holding(tally(txn), CONFIG))
