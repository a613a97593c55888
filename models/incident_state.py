"""The incident tracker's durable state and its feature rows (see :mod:`models.incidents`).

A terminal's recent traffic is a dict of 15 s *slots* of key time, each a list of
counters (:data:`ATTEMPTS` ... in a fixed, persisted order) and the bank's first-answer
latencies; :class:`TerminalActivity` holds them. A firing incident of a terminal or a
merchant is an :class:`Episode`. Both encode with msgpack (``to_bytes``) for the
workers' changelogged table, where they are stored under :data:`SLOTS_PREFIX` and
:data:`EPISODE_PREFIX`. :func:`feature_matrix` turns windows of slots into rows of
:data:`~models.incident_features.FEATURES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from models.incident_features import FEATURES

# Slot counters, in this order (persisted: append only).
ATTEMPTS, APPROVED, DECLINED, TIMEOUT, ERROR, CANCELLED, REVERSALS = range(7)
EXTRA_DEBITS, FAILED_CHARGED, LATE_ANSWERS, COUNTERS = 7, 8, 9, 10
_STATE_VERSION: Final = 2
NO_EPISODE: Final = 0
FIRING: Final = 1
RESOLVED: Final = 2


class TerminalActivity:
    """One terminal's recent slots (durable under ``~slots/<terminal_id>``)."""

    __slots__ = (
        "merchant_id",
        "slots",
        "terminal_id",
        "window_at",
        "window_latencies",
        "window_totals",
    )

    def __init__(self, terminal_id: str, merchant_id: str) -> None:
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        # slot number -> (counters, issuer latencies in ms)
        self.slots: dict[int, tuple[list[int], list[int]]] = {}
        # Derived, never stored: the window the tracker scored at its step ``window_at``
        # (its counters summed, None when no slot was in it; its latencies), so a step
        # re-reads only the terminals whose window changed (models.incidents).
        self.window_at: int | None = None
        self.window_totals: list[int] | None = None
        self.window_latencies: list[int] = []

    def take_window(self, boundary: int, last: int) -> None:
        """Recompute the window of the step at ``boundary``: the slots before ``last``."""
        inside = [slot for number, slot in self.slots.items() if number < last]
        if not inside:
            self.window_totals = None
            self.window_latencies = []
        elif len(inside) == 1:
            self.window_totals = list(inside[0][0])
            self.window_latencies = list(inside[0][1])
        else:
            self.window_totals = [
                sum(column) for column in zip(*(c for c, _ in inside), strict=True)
            ]
            self.window_latencies = [ms for _, latencies in inside for ms in latencies]
        self.window_at = boundary

    def slot(self, number: int) -> tuple[list[int], list[int]]:
        found = self.slots.get(number)
        if found is None:
            found = self.slots[number] = ([0] * COUNTERS, [])
        return found

    def to_bytes(self) -> bytes:
        return _ENCODER.encode((_STATE_VERSION, self.terminal_id, self.merchant_id, self.slots))

    @classmethod
    def from_bytes(cls, blob: bytes) -> TerminalActivity:
        try:
            version, terminal, merchant, slots = _ACTIVITY.decode(blob)
        except msgspec.DecodeError as error:
            raise ValueError(f"not a terminal activity state: {error}") from error
        if version != _STATE_VERSION:
            raise ValueError(f"terminal activity version {version} is not {_STATE_VERSION}")
        activity = cls(terminal, merchant)
        activity.slots = {n: (list(c), list(lat)) for n, (c, lat) in slots.items()}
        return activity


class Episode:
    """The incident state of one terminal or merchant (durable under
    ``~incident/<scope>:<id>``): none yet, firing since ``detected_us``, or resolved."""

    __slots__ = (
        "alert",
        "detected_us",
        "entity",
        "merchant_id",
        "normal_streak",
        "peak",
        "scope",
        "status",
    )

    def __init__(self, scope: str, entity: str, merchant_id: str) -> None:
        self.scope = scope  # "terminal" or "merchant"
        self.entity = entity
        self.merchant_id = merchant_id
        self.status = NO_EPISODE
        self.alert = ""
        self.detected_us = 0
        self.normal_streak = 0
        self.peak = 0.0

    @property
    def key(self) -> str:
        return f"{self.scope}:{self.entity}"

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(
            (
                _STATE_VERSION,
                self.scope,
                self.entity,
                self.merchant_id,
                self.status,
                self.alert,
                self.detected_us,
                self.normal_streak,
                self.peak,
            )
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> Episode:
        try:
            fields = _EPISODE.decode(blob)
        except msgspec.DecodeError as error:
            raise ValueError(f"not an incident episode state: {error}") from error
        version, scope, entity, merchant, status, alert, detected, streak, peak = fields
        if version != _STATE_VERSION or scope not in ("terminal", "merchant"):
            raise ValueError(f"incident episode version {version} / scope {scope!r} unknown")
        episode = cls(scope, entity, merchant)
        episode.status, episode.alert, episode.detected_us = status, alert, detected
        episode.normal_streak, episode.peak = streak, peak
        return episode


def merchant_of_state(blob: bytes) -> str:
    """The merchant of a stored activity or episode (which join partition owns it)."""
    try:
        fields = msgspec.msgpack.decode(blob)
    except msgspec.DecodeError as error:
        raise ValueError(f"not an incident state: {error}") from error
    if not isinstance(fields, list) or len(fields) not in (4, 9):
        raise ValueError("not an incident state")
    merchant = fields[2] if len(fields) == 4 else fields[3]
    if not isinstance(merchant, str):
        raise ValueError("not an incident state: no merchant")
    return merchant


_ENCODER: Final = msgspec.msgpack.Encoder()
_ACTIVITY: Final = msgspec.msgpack.Decoder(
    tuple[int, str, str, dict[int, tuple[list[int], list[int]]]]
)
_EPISODE: Final = msgspec.msgpack.Decoder(tuple[int, str, str, str, int, str, int, int, float])


Slot = tuple[list[int], list[int]]  # (counters, issuer latencies in ms)


def feature_matrix(groups: Sequence[Sequence[Slot]]) -> NDArray[np.float64]:
    """One :data:`FEATURES` row per group of slots (a terminal's window, or all the
    windows of a merchant's terminals), computed for all groups at once.

    A step scores every active terminal and merchant; summing their counters and taking
    the latency quantiles in numpy keeps that a few array operations instead of a Python
    loop per terminal and counter (measured: docs/incidents.md, "Cost").
    """
    sizes = [len(group) for group in groups]
    owners = np.repeat(np.arange(len(groups)), sizes)
    counters = np.array(
        [counts for group in groups for counts, _lat in group], dtype=np.float64
    ).reshape(-1, COUNTERS)
    total = np.zeros((len(groups), COUNTERS))
    np.add.at(total, owners, counters)
    latency_sizes = [len(lat) for group in groups for _counts, lat in group]
    latencies = np.array(
        [ms for group in groups for _counts, lat in group for ms in lat], dtype=np.float64
    )
    return feature_rows(total, latencies, np.repeat(owners, latency_sizes))


def feature_rows(
    total: NDArray[np.float64], latencies: NDArray[np.float64], latency_owners: NDArray[np.int_]
) -> NDArray[np.float64]:
    """The :data:`FEATURES` rows of groups given their summed counters (one row of
    :data:`COUNTERS` per group) and their latencies in ms (each with its group's row).

    Sums of integer counters are exact in float64 whichever way they were added, and a
    quantile depends only on the multiset of latencies: every way of building the
    inputs gives the same rows, bit for bit.
    """
    groups = len(total)
    attempts = total[:, ATTEMPTS]
    outcomes = total[:, [APPROVED, DECLINED, TIMEOUT, ERROR, CANCELLED]].sum(axis=1)
    per_outcome = np.divide(1.0, outcomes, out=np.zeros_like(outcomes), where=outcomes > 0)
    per_attempt = np.divide(1.0, attempts, out=np.zeros_like(attempts), where=attempts > 0)
    rows = np.empty((groups, len(FEATURES)))
    rows[:, 0] = attempts
    for column, counter in enumerate((TIMEOUT, ERROR, DECLINED, CANCELLED), start=1):
        rows[:, column] = total[:, counter] * per_outcome
    shares = (REVERSALS, EXTRA_DEBITS, FAILED_CHARGED, LATE_ANSWERS)
    for column, counter in enumerate(shares, start=5):
        rows[:, column] = np.minimum(1.0, total[:, counter] * per_attempt)
    rows[:, 9] = _group_quantile(latencies, latency_owners, groups, 0.5) / 1000.0
    rows[:, 10] = _group_quantile(latencies, latency_owners, groups, 0.95) / 1000.0
    return rows


def _group_quantile(
    values: NDArray[np.float64], owners: NDArray[np.int_], groups: int, q: float
) -> NDArray[np.float64]:
    """Per owner, the value at rank ``floor(q * n)`` of its ``n`` sorted values (0: none)."""
    out = np.zeros(groups)
    if not len(values):
        return out
    order = np.lexsort((values, owners))
    ordered, by_owner = values[order], owners[order]
    counts = np.bincount(owners, minlength=groups)
    starts = np.searchsorted(by_owner, np.arange(groups))
    present = counts > 0
    ranks = np.minimum(counts - 1, np.floor(q * counts).astype(np.int_))
    out[present] = ordered[(starts + ranks)[present]]
    return out


def features(slots: Sequence[Slot]) -> list[float]:
    """The :data:`FEATURES` row of one window of slots (see :func:`feature_matrix`)."""
    return [float(value) for value in feature_matrix([slots])[0]]


SLOTS_PREFIX: Final = "~slots/"
EPISODE_PREFIX: Final = "~incident/"
