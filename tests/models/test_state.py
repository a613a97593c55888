"""Transaction state survives a round trip through bytes, and a corrupt blob is refused.

The stream workers keep this state in changelogged tables (issue #3): a restored worker
must continue exactly, and must not crash later on a blob it accepted.
"""

from __future__ import annotations

import msgspec
import pytest

from models.events import Step
from models.reconciler import Reconciler
from models.stream_time import Progress
from models.transaction import Txn
from tests.factories import BASE_SECOND, apply, event

MICROS = 1_000_000


def sample() -> Txn:
    txn = Txn(f"T/1/000042/{BASE_SECOND}", "M-1", "tok")
    txn.append(Step.REQUEST, BASE_SECOND * MICROS, 1_000, 978, None, "r1")
    txn.append(Step.DEBIT, BASE_SECOND * MICROS + 5, 1_000, 978, "00", "d1")
    txn.alerts = {"unmatched_debit": (1, 123)}
    return txn


def test_state_round_trips() -> None:
    txn = sample()
    back = Txn.from_bytes(txn.to_bytes())
    assert (back.key, back.records, back.ids, back.alerts) == (
        txn.key,
        txn.records,
        txn.ids,
        txn.alerts,
    )
    assert back.event_ids == ["r1", "d1"]


def fields_of(txn: Txn) -> list[object]:
    return list(msgspec.msgpack.decode(txn.to_bytes()))


@pytest.mark.parametrize(
    ("position", "value", "message"),
    [
        (0, 99, "version"),
        (1, "no-slashes", "not a transaction key"),
        (4, b"\x01" * 20, "aligned"),
        (5, "\x1ftr1\x1f", "disagree"),
        (5, "tr1\x1fid1\x1f", "malformed"),
    ],
    ids=["version", "key", "records", "ids_count", "ids_shape"],
)
def test_corrupt_state_is_refused_on_restore(position: int, value: object, message: str) -> None:
    fields = fields_of(sample())
    fields[position] = value
    with pytest.raises(ValueError, match=message):
        Txn.from_bytes(msgspec.msgpack.encode(fields))


def test_not_msgpack_is_refused() -> None:
    with pytest.raises(ValueError, match="not a transaction state"):
        Txn.from_bytes(b"\xc1garbage")


def test_restore_judges_a_window_that_closed_while_the_state_was_saved_behind() -> None:
    # The progress changelog got ahead of the transaction table: the restored stream
    # time is past this window, which was never judged. It is judged on restore.
    first = Reconciler()
    apply(first, "terminal", event("request", 0.1))
    apply(first, "issuer", event("debit", 1.2))
    assert first.take_alerts() == []
    store = {key: Txn.from_bytes(txn.to_bytes()) for key, txn in first.store.items()}
    later = (BASE_SECOND + 400) * MICROS
    restored = Reconciler(store=store, progress=Progress(later, later))
    (alert,) = restored.take_alerts()
    assert alert.kind == "unmatched_debit"
    again = Reconciler(
        store={k: Txn.from_bytes(t.to_bytes()) for k, t in restored.store.items()},
        progress=Progress(later, later),
    )
    assert again.take_alerts() == []  # judged once: the flag is in the state
