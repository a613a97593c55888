"""Property tests (hypothesis): the final firing set is a function of the *set* of events.

MISSION.md: order, duplicates and partitioning must not change final verdicts. We draw
random transactions (any mix of terminal and issuer events, some on shared terminals,
times spread past the window so late events happen), random watermarks, and check that
the alerts firing at the end of the capture do not change when

* the arrival order is permuted,
* events are redelivered (same event_id, any number of times, anywhere later),
* the capture is split by transaction key into N partitions processed separately
  (watermarks copied to every partition, CONTRACT §1.3),
* the reconciler's state is serialised mid-stream and restored into a new one,

and that they equal an oracle written straight from CONTRACT §1.2/§2, independently of
the core's code.

The captures span minutes, far inside the 7-day retention, so no event is ``too_late``:
order *can* decide which events arrive too late to count, and the contract's invariance
(§4) is about captures whose events all count. Retention has its own tests
(test_stream_time.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from models.alerts import Alert, alert_id
from models.final_states import firing_set
from models.reconciler import Reconciler
from models.stream_time import Progress
from models.transaction import Txn
from tests.factories import BASE_SECOND, apply, event, watermark

Item = tuple[str, dict[str, Any]]

TERMINAL_STEPS = ["request", "approved", "declined", "timeout", "error", "cancelled", "reversal"]
ISSUER_STEPS = ["auth_ok", "auth_no", "hold", "hold_release", "debit", "reversal", "refund"]


@dataclasses.dataclass
class Sale:
    terminal: str
    stan: str
    tx: int
    events: list[Item]


@st.composite
def sales(draw: st.DrawFn) -> list[Sale]:
    count = draw(st.integers(1, 6))
    used: set[tuple[str, str, int]] = set()
    out = []
    serial = 0
    for _ in range(count):
        terminal = draw(st.sampled_from(["T-1", "T-2", "T/3"]))
        stan = draw(st.sampled_from(["000001", "000002", "999999"]))
        tx = draw(st.sampled_from([0, 1, 200, 900]))
        if (terminal, stan, tx) in used:
            continue
        used.add((terminal, stan, tx))
        amount = draw(st.sampled_from([1_000, 1_100]))
        common: dict[str, Any] = {
            "terminal": terminal,
            "stan": stan,
            "tx": float(tx),
            "card": f"tok_{terminal}",
        }
        items: list[Item] = []
        for step in draw(st.lists(st.sampled_from(TERMINAL_STEPS), max_size=3)):
            serial += 1
            t = tx + draw(st.integers(0, 800))
            if step in ("request", "reversal"):
                body = event(step, t, amount=amount, event_id=f"e{serial}", **common)
            else:
                body = event(
                    "outcome", t, outcome=step, amount=amount, event_id=f"e{serial}", **common
                )
            items.append(("terminal", body))
        for step in draw(st.lists(st.sampled_from(ISSUER_STEPS), max_size=5)):
            serial += 1
            t = tx + draw(st.integers(0, 800))
            money = draw(st.sampled_from([amount, amount, 1_100]))
            currency = draw(st.sampled_from(["EUR", "EUR", "EUR", "USD"]))
            extra: dict[str, Any] = {}
            type_ = step
            if step.startswith("auth"):
                type_, extra = "authorization", {"approved": step == "auth_ok"}
            body = event(
                type_, t, amount=money, currency=currency, event_id=f"e{serial}", **common, **extra
            )
            items.append(("issuer", body))
        out.append(Sale(terminal, stan, tx, items))
    return out


@st.composite
def captures(draw: st.DrawFn) -> tuple[list[Sale], list[Item]]:
    """Sales and one arrival order of their events, with some watermarks mixed in."""
    drawn = draw(sales())
    items = [item for sale in drawn for item in sale.events]
    items = draw(st.permutations(items))
    for index in sorted(draw(st.lists(st.integers(0, len(items)), max_size=3)), reverse=True):
        source = draw(st.sampled_from(["terminal", "issuer"]))
        items.insert(index, (source, watermark(draw(st.integers(0, 2_000)))))
    return drawn, items


def replay(items: list[Item]) -> list[Alert]:
    reconciler = Reconciler()
    for source, body in items:
        apply(reconciler, source, body)
    reconciler.finish()
    return reconciler.take_alerts()


def key_of(body: dict[str, Any]) -> str:
    return f"{body['terminal_id']}/{body['stan']}/{body['transmitted_at']}"


# -- the oracle: CONTRACT §1.2 and §2, read literally -----------------------------------


def oracle(sale: Sale) -> set[str]:
    terminal = [b for s, b in sale.events if s == "terminal"]
    issuer = [b for s, b in sale.events if s == "issuer"]
    outcomes = sorted(
        (b for b in terminal if b["type"] == "outcome"),
        key=lambda b: (b["occurred_at"], b["event_id"]),
    )
    reversal_sent = any(b["type"] == "reversal" for b in terminal)
    completed = bool(outcomes) and outcomes[-1]["outcome"] == "approved" and not reversal_sent

    def total(type_: str) -> int:
        return sum(b["amount_minor"] for b in issuer if b["type"] == type_)

    def count(type_: str) -> int:
        return sum(1 for b in issuer if b["type"] == type_)

    if count("debit"):
        net = max(0, total("debit") - total("refund") - total("reversal"))
    else:
        net = max(0, total("hold") - total("hold_release") - total("reversal"))
    kinds = set()
    if net > 0 and not completed and not reversal_sent:
        kinds.add("unmatched_debit")
    if net > 0 and reversal_sent:
        kinds.add("reversal_not_applied")
    if completed and net == 0:
        kinds.add("terminal_approved_no_debit")
    if completed and net > 0:
        shown = outcomes[-1]
        if any(
            (b["amount_minor"], b["currency"]) != (shown["amount_minor"], shown["currency"])
            for b in issuer
            if b["type"] in ("debit", "hold")
        ):
            kinds.add("amount_mismatch")
    if count("debit") - count("reversal") - count("refund") >= 2:
        kinds.add("duplicate_debit")
    return kinds


def oracle_ids(drawn: list[Sale]) -> set[str]:
    return {
        alert_id(sale.terminal, sale.stan, BASE_SECOND + sale.tx, kind)
        for sale in drawn
        for kind in oracle(sale)
    }


# -- the properties ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(captures())
def test_final_firing_set_matches_the_contract_oracle(
    capture: tuple[list[Sale], list[Item]],
) -> None:
    drawn, items = capture
    assert {entry[0] for entry in firing_set(replay(items))} == oracle_ids(drawn)


@settings(max_examples=100, deadline=None)
@given(captures(), st.randoms(use_true_random=False))
def test_firing_set_does_not_depend_on_arrival_order(
    capture: tuple[list[Sale], list[Item]], rnd: Any
) -> None:
    _, items = capture
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert firing_set(replay(shuffled)) == firing_set(replay(items))


@settings(max_examples=100, deadline=None)
@given(captures(), st.data())
def test_redelivered_events_do_not_change_the_firing_set(
    capture: tuple[list[Sale], list[Item]], data: st.DataObject
) -> None:
    _, items = capture
    redelivered = list(items)
    for _ in range(data.draw(st.integers(0, 6))):
        if not items:
            break
        original = data.draw(st.integers(0, len(items) - 1))
        later = data.draw(st.integers(original + 1, len(redelivered)))
        redelivered.insert(later, items[original])
    assert firing_set(replay(redelivered)) == firing_set(replay(items))


@settings(max_examples=100, deadline=None)
@given(captures(), st.integers(2, 5))
def test_splitting_by_transaction_key_into_partitions_gives_the_same_firing_set(
    capture: tuple[list[Sale], list[Item]], partitions: int
) -> None:
    _, items = capture
    lanes: list[list[Item]] = [[] for _ in range(partitions)]
    for source, body in items:
        if body["type"] == "watermark":
            for lane in lanes:  # §1.3: a watermark goes to every partition
                lane.append((source, body))
        else:
            digest = hashlib.blake2b(key_of(body).encode(), digest_size=4).digest()
            lanes[int.from_bytes(digest, "big") % partitions].append((source, body))
    merged = [alert for lane in lanes for alert in replay(lane)]
    assert firing_set(merged) == firing_set(replay(items))


@settings(max_examples=100, deadline=None)
@given(captures(), st.data())
def test_state_restored_mid_stream_continues_exactly(
    capture: tuple[list[Sale], list[Item]], data: st.DataObject
) -> None:
    _, items = capture
    cut = data.draw(st.integers(0, len(items)))
    first = Reconciler()
    for source, body in items[:cut]:
        apply(first, source, body)
    published = first.take_alerts()
    # What a changelog would hold: every transaction's bytes and the two progresses.
    blobs = {key: txn.to_bytes() for key, txn in first.store.items()}
    progress = Progress(first.progress.terminal, first.progress.issuer)
    second = Reconciler(
        store={key: Txn.from_bytes(blob) for key, blob in blobs.items()}, progress=progress
    )
    for source, body in items[cut:]:
        apply(second, source, body)
    second.finish()
    published += second.take_alerts()
    uninterrupted = replay(items)
    assert firing_set(published) == firing_set(uninterrupted)
    assert sorted((a.alert_id, a.status) for a in published) == sorted(
        (a.alert_id, a.status) for a in uninterrupted
    )
