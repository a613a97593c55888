"""The tracker's cached window sums (models/incidents.py ``_windows``) decide exactly as
summing every window's slots afresh at every step (what the tracker did before the
cache, and what :func:`models.incident_state.feature_matrix` still does).

Random interleavings of events (late ones, ones inside the scored window, ones keyed
ahead) and stream-time moves (single steps and jumps) go to two trackers: the real one
and a reference that forgets its cache before every step and builds its rows from the
raw slots. Their rows, alerts and durable state must be identical, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from models.events import Step
from models.incident_features import FEATURES
from models.incident_state import TerminalActivity, feature_matrix
from models.incidents import IncidentConfig, IncidentTracker

TIMEOUT = FEATURES.index("timeout_share")
ATTEMPTS = FEATURES.index("attempts")
BASE = 1_800_000_000  # a second on a 15 s boundary
MICROS = 1_000_000


class Recorder:
    """Flags rows with >= 2 attempts and a third timed out; keeps every row it saw."""

    def __init__(self) -> None:
        self.seen: list[NDArray[np.float64]] = []

    def assess(self, rows: NDArray[np.float64]) -> list[tuple[bool, float]]:
        self.seen.append(np.array(rows))
        return [(bool(r[ATTEMPTS] >= 2 and r[TIMEOUT] >= 0.3), float(r[TIMEOUT])) for r in rows]

    def min_attempts(self) -> int:
        return 2

    def usual(self) -> Sequence[float]:
        return [0.0] * len(FEATURES)

    def deviations(self, row: Sequence[float]) -> Sequence[float]:
        return list(row)


class FromScratch(IncidentTracker):
    """The reference: no cache, every row summed from the slots at every step."""

    def _windows(self, boundary: int) -> list[TerminalActivity]:
        for activity in self.terminals.values():
            activity.window_at = None
        return super()._windows(boundary)

    @staticmethod
    def _feature_table(
        windowed: list[TerminalActivity], by_merchant: dict[str, list[int]], merchants: list[str]
    ) -> NDArray[np.float64]:
        last = windowed[0].window_at  # every windowed terminal was just scored
        assert last is not None
        cut = last - 2  # the step's boundary minus the lag (2 slots in this config)
        groups = [[s for n, s in a.slots.items() if n < cut] for a in windowed]
        merchant_groups = [
            [slot for index in by_merchant[m] for slot in groups[index]] for m in merchants
        ]
        return feature_matrix(groups + merchant_groups)


STEPS = [int(s) for s in Step]
Event = tuple[int, int, int, int, list[int], bool]
events = st.tuples(
    st.integers(0, 5),  # terminal (two per merchant)
    st.integers(-200, 400),  # key second, relative to stream time
    st.sampled_from(STEPS),
    st.integers(0, 60_000),  # bank latency in ms
    st.lists(st.sampled_from(STEPS), max_size=4),  # the steps before this event
    st.booleans(),  # the transaction's first terminal event
)
moves = st.one_of(st.integers(0, 40), st.integers(40, 2000))  # seconds of stream time
scripts = st.lists(st.tuples(st.lists(events, max_size=12), moves), min_size=1, max_size=25)


def run(tracker: IncidentTracker, script: list[tuple[list[Event], int]]) -> dict[str, Any]:
    now = BASE
    tracker.advance(now * MICROS)
    touched: list[tuple[str, bytes | None]] = []
    for batch, move in script:
        for terminal, offset, step, latency_ms, before, first in batch:
            second = now + offset
            records = b"".join(bytes([b]) + bytes(20) for b in before)
            tracker.observe(
                f"T-{terminal}",
                f"M-{terminal // 2}",
                second,
                step,
                second * MICROS + latency_ms * 1000,
                records,
                first,
            )
        now += move
        tracker.advance(now * MICROS)
        touched.extend(sorted(tracker.take_touched()))
    assert isinstance(tracker.scorer, Recorder)
    return {
        "rows": [rows.tolist() for rows in tracker.scorer.seen],
        "alerts": tracker.take_alerts(),
        "touched": touched,
        "late": tracker.late_events,
        "slots": {t: a.slots for t, a in tracker.terminals.items()},
    }


CONFIG = IncidentConfig(step=15.0, window=60.0, lag=30.0, clear_steps=2)


@settings(max_examples=300, deadline=None)
@given(scripts)
def test_cached_windows_decide_as_summing_every_window_afresh(
    script: list[tuple[list[Event], int]],
) -> None:
    cached = run(IncidentTracker(Recorder(), CONFIG), script)
    reference = run(FromScratch(Recorder(), CONFIG), script)
    assert cached == reference


def test_the_property_sees_incidents_fire() -> None:
    """The comparison covers incidents: with this scorer and config, three timeouts
    fire one, which resolves."""
    timeouts: list[Event] = [(0, 0, int(Step.TIMEOUT), 0, [], True)] * 3
    quiet: list[Event] = []
    script = [(timeouts, 15)] + [(quiet, 15)] * 12
    result = run(IncidentTracker(Recorder(), CONFIG), script)
    assert [a.status.value for a in result["alerts"]] == ["firing", "resolved"]
    assert result["rows"] and result["rows"] == run(FromScratch(Recorder(), CONFIG), script)["rows"]
