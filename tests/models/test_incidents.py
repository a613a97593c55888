"""The incident tracker (models/incidents.py): features, episodes, persistence.

The scorer here is a fake with a fixed rule (half the sales timed out => abnormal): these
tests pin the tracker's bookkeeping, not the model (tests/models/test_incident_model.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from models.alerts import Cause, Kind, Status
from models.incident_features import FEATURES
from models.incidents import (
    Episode,
    IncidentConfig,
    IncidentTracker,
    TerminalActivity,
    features,
    merchant_of_state,
)
from models.reconciler import Reconciler
from tests.factories import BASE_SECOND, apply, event, watermark

TIMEOUT = FEATURES.index("timeout_share")
ATTEMPTS = FEATURES.index("attempts")


class HalfTimedOut:
    """Fake scorer: abnormal when >= 3 attempts and >= half the outcomes timed out."""

    def assess(self, rows: NDArray[np.float64]) -> list[tuple[bool, float]]:
        return [
            (bool(r[ATTEMPTS] >= 3 and r[TIMEOUT] >= 0.5), float(min(1.0, r[TIMEOUT])))
            for r in rows
        ]

    def min_attempts(self) -> int:
        return 3

    def usual(self) -> Sequence[float]:
        return [5.0, 0.01, 0.0, 0.04, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]

    def deviations(self, row: Sequence[float]) -> Sequence[float]:
        return [abs(a - b) for a, b in zip(row, self.usual(), strict=True)]


def sale(reconciler: Reconciler, n: int, t: float, outcome: str, terminal: str = "T-1") -> None:
    """A sale keyed at t: request, the bank's debit 1.5 s later, the terminal's outcome."""
    stan = f"{n:06d}"
    common: dict[str, Any] = {"terminal": terminal, "stan": stan, "tx": t}
    apply(reconciler, "terminal", event("request", t, **common))
    apply(reconciler, "issuer", event("authorization", t + 1, approved=True, **common))
    apply(reconciler, "issuer", event("debit", t + 1.5, **common))
    apply(reconciler, "terminal", event("outcome", t + 31, outcome=outcome, **common))


def both_to(reconciler: Reconciler, t: float) -> None:
    apply(reconciler, "terminal", watermark(t))
    apply(reconciler, "issuer", watermark(t))


def make() -> tuple[Reconciler, IncidentTracker]:
    tracker = IncidentTracker(HalfTimedOut(), IncidentConfig())
    return Reconciler(incidents=tracker), tracker


def incidents(alerts: list[Any]) -> list[Any]:
    return [a for a in alerts if a.kind is Kind.TERMINAL_INCIDENT]


def test_features_of_a_window() -> None:
    reconciler, tracker = make()
    for n, outcome in enumerate(["approved", "timeout", "timeout", "error"]):
        sale(reconciler, n, 10 * n, outcome)
    slots = list(tracker.terminals["T-1"].slots.values())
    row = dict(zip(FEATURES, features([c for c in slots]), strict=True))
    assert row["attempts"] == 4
    assert row["timeout_share"] == 0.5 and row["error_share"] == 0.25
    # timeouts and the error came after the debit: failed but charged
    assert row["failed_but_charged_share"] == 0.75
    assert row["issuer_latency_p50_s"] == 1.0 and row["extra_debit_share"] == 0.0


def test_an_outage_fires_once_then_resolves() -> None:
    reconciler, _tracker = make()
    n = 0
    for t in range(0, 300, 15):  # 5 minutes of timeouts, then 10 minutes of normal sales
        sale(reconciler, n, t, "timeout")
        n += 1
    for t in range(300, 900, 15):
        sale(reconciler, n, t, "approved")
        n += 1
    both_to(reconciler, 1200)
    found = incidents(reconciler.take_alerts())
    assert [a.status for a in found] == [Status.FIRING, Status.RESOLVED]
    fired, resolved = found
    assert fired.alert_id == resolved.alert_id and fired.alert_id.startswith("ti-")
    # Scored every 15 s on the keys of [T - 150 s, T - 30 s): at 09:01:00 that holds two
    # sales (too few for the fake's 3); at 09:01:15 the three keyed before 09:00:45,
    # all timed out.
    assert fired.detected_at == "2026-11-27T09:01:15Z"
    assert fired.probable_cause is Cause.NETWORK_FAILURE
    assert "Terminal T-1 at merchant M-001" in fired.explanation
    assert "timed out" in fired.explanation
    assert fired.incident_features is not None
    assert "timeout_share" in {feature.name for feature in fired.incident_features}
    assert resolved.resolved_at is not None and resolved.resolved_at > fired.detected_at


def test_quiet_terminals_are_forgotten_and_state_round_trips() -> None:
    reconciler, tracker = make()
    sale(reconciler, 1, 0, "timeout")
    activity = tracker.terminals["T-1"]
    restored = TerminalActivity.from_bytes(activity.to_bytes())
    assert restored.slots == activity.slots and restored.merchant_id == "M-001"
    assert merchant_of_state(activity.to_bytes()) == "M-001"
    both_to(reconciler, 3600)
    assert tracker.terminals == {}
    assert dict(tracker.take_touched())["~slots/T-1"] is None  # deleted


def test_a_restored_tracker_decides_as_an_uninterrupted_one() -> None:
    def run_through(cut: int | None) -> list[Any]:
        reconciler, tracker = make()
        alerts = []
        for n, t in enumerate(range(0, 600, 15)):
            sale(reconciler, n, t, "timeout" if 60 <= t < 360 else "approved")
            if n == cut:
                alerts += incidents(reconciler.take_alerts())
                tracker.touched = {f"~slots/{t}" for t in tracker.terminals}
                tracker.touched |= {f"~incident/{k}" for k in tracker.episodes}
                blobs = [(k, b) for k, b in tracker.take_touched() if b is not None]
                stream_time = reconciler.stream_time
                tracker = IncidentTracker(HalfTimedOut(), IncidentConfig())
                for key, blob in blobs:
                    tracker.load(key, blob)
                tracker.resume(stream_time)
                reconciler.incidents = tracker
        both_to(reconciler, 3000)
        alerts += incidents(reconciler.take_alerts())
        return [(a.alert_id, a.status, a.detected_at) for a in alerts]

    assert run_through(None) == run_through(17)
    assert len(run_through(None)) == 2


def test_events_before_the_scored_window_are_late() -> None:
    reconciler, tracker = make()
    sale(reconciler, 1, 0, "approved")
    both_to(reconciler, 900)
    sale(reconciler, 2, 10, "timeout")  # keyed 15 minutes behind stream time
    assert tracker.late_events == 4


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"step": 0}, "step"),
        ({"window": 100}, "multiples"),
        ({"clear_steps": 0}, "clear_steps"),
    ],
)
def test_config_checks(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IncidentConfig(**bad)


def test_bad_state_is_refused() -> None:
    with pytest.raises(ValueError, match="terminal activity"):
        TerminalActivity.from_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="episode"):
        Episode.from_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="incident state"):
        merchant_of_state(b"\x93\x01\x02\x03")
    assert BASE_SECOND > 0


def test_a_merchant_wide_failure_is_one_merchant_incident() -> None:
    reconciler, _tracker = make()
    n = 0
    for t in range(0, 300, 10):  # three terminals of one merchant, all timing out
        for terminal in ("T-1", "T-2", "T-3"):
            sale(reconciler, n, t, "timeout", terminal=terminal)
            n += 1
    both_to(reconciler, 1500)
    found = incidents(reconciler.take_alerts())
    assert {(a.scope, a.status) for a in found} == {
        ("merchant", Status.FIRING),
        ("merchant", Status.RESOLVED),
    }
    fired = found[0]
    assert fired.terminal_id is None and fired.merchant_id == "M-001"
    assert fired.terminals == ["T-1", "T-2", "T-3"]
    assert fired.explanation.startswith("Merchant M-001 (3 terminals):")


def test_a_slot_keyed_years_ahead_does_not_make_stream_time_crawl() -> None:
    """A terminal whose clock says 2030 leaves a slot far ahead; a far-future watermark
    must not walk the 15 s steps up to it one by one (that would take hours)."""
    reconciler, tracker = make()
    sale(reconciler, 1, 0, "approved")
    four_years = 4 * 365 * 86400
    apply(reconciler, "terminal", event("request", four_years, stan="000002", tx=four_years))
    both_to(reconciler, 600)
    started = time.perf_counter()
    both_to(reconciler, 5 * 365 * 86400)
    assert time.perf_counter() - started < 2.0
    assert tracker.terminals == {}  # every slot scored and dropped
