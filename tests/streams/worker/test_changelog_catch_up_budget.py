"""One catch-up budget per rebalance, shared by every table of the app
(streams/worker/changelog_catch_up.py): aiokafka sends no heartbeat until the whole
rebalance callback is done, so two tables must not get a third of the session each."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streams.worker.changelog_catch_up import rebalance_deadline


@dataclass
class Conf:
    broker_session_timeout: float


@dataclass(eq=False)  # hashable by identity, and weakly referenced, as a Faust app is
class App:
    conf: Conf = field(default_factory=lambda: Conf(45.0))


def test_tables_of_one_rebalance_share_one_deadline() -> None:
    app = App()
    before = time.monotonic()
    first = rebalance_deadline(app, generation_id=3)
    time.sleep(0.01)
    assert rebalance_deadline(app, generation_id=3) == first
    assert before + 15.0 <= first <= time.monotonic() + 15.0


def test_a_new_rebalance_gets_a_new_deadline_and_apps_are_apart() -> None:
    app, other = App(), App(Conf(9.0))
    first = rebalance_deadline(app, generation_id=3)
    time.sleep(0.01)
    assert rebalance_deadline(app, generation_id=4) > first
    assert rebalance_deadline(other, generation_id=3) < first
