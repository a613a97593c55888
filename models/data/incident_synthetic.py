"""Synthetic incident-feature rows: normal traffic and four kinds of incident.

Rows have the columns of :data:`models.incident_features.FEATURES` and are built the
way :func:`models.incidents.features` builds them, from per-transaction counts, so a
terminal with few sales shows the same sampling noise as in production (one timeout
in 3 sales is a 0.33 timeout share). Used by ``bench/incident_model_choice.py`` to
choose the algorithm and by the incident model's tests.

Normal traffic (per row: one terminal, one window):

* attempts ~ Poisson(lambda), lambda ~ U(3, 15) (``U(30, 60)`` for :func:`busy_rows`);
* outcome probabilities timeout 1 %, error 0.3 %, declined 4 %, cancelled 0.5 %, the
  rest approved; per attempt reversal 0.5 %, extra debit 0.2 %, failed but charged
  0.5 %; every rate varies per terminal (times a Gamma factor of mean 1);
* issuer latency: one log-normal per terminal with median U(1, 2) s and p95 / p50 in
  U(1.5, 2.5); one latency per sale the bank answered (approved, declined, charged),
  reduced to the row's p50 and p95 like the tracker does (0 when none answered).

Incidents (attempts at least 3):

=================  ============================================================
kind               pattern
=================  ============================================================
``timeouts``       timeout share U(0.5, 1), failed but charged U(0.3, 0.5)
``errors``         error share U(0.5, 1)
``extra_debits``   extra debit share 0.8
``slow_issuer``    issuer p95 U(30, 60) s: a share U(0.2, 0.6) of the sales
                   (at least one) answered that late and timed out
``mild_timeouts``  timeout share U(0.2, 0.4), exactly one failed but charged:
                   the weak end of an outage (reported, not required)
=================  ============================================================

Example::

    >>> import numpy as np
    >>> rows = normal_rows(4, np.random.default_rng(0))
    >>> rows.shape
    (4, 10)
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.incident_features import FEATURES, LATE_ANSWER_S

Matrix = NDArray[np.float64]
Counts = NDArray[np.int64]

# timeout, error, declined, cancelled (approved: the rest)
_OUTCOME_RATES: Final = np.array([0.010, 0.003, 0.040, 0.005])
TIMEOUT, ERROR, DECLINED, CANCELLED, APPROVED = range(5)
# reversal, extra debit, failed but charged (per attempt)
_ATTEMPT_RATES: Final = np.array([0.005, 0.002, 0.005])
REVERSAL, EXTRA_DEBIT, CHARGED = range(3)
_HETEROGENEITY_SHAPE: Final = 4.0  # Gamma(4, 1/4) factor per terminal: CV 0.5
_Z95: Final = 1.6448536269514722
_MIN_INCIDENT_ATTEMPTS: Final = 3

INCIDENT_KINDS: Final = ("timeouts", "errors", "extra_debits", "slow_issuer")
"""The incident kinds the model must detect (``mild_timeouts`` is extra, reported only)."""


class _Traffic:
    """Many terminals' windows at once, as counts (one terminal per row)."""

    def __init__(self, rng: np.random.Generator, attempts: Counts) -> None:
        self.rng = rng
        self.attempts = attempts
        rows = attempts.size
        factor = rng.gamma(_HETEROGENEITY_SHAPE, 1 / _HETEROGENEITY_SHAPE, size=(rows, 7))
        self.outcomes = self._outcomes(attempts, _OUTCOME_RATES * factor[:, :4])
        self.extras: Counts = rng.binomial(attempts[:, None], _ATTEMPT_RATES * factor[:, 4:])
        self.median_s = rng.uniform(1.0, 2.0, size=rows)
        self.sigma = np.log(rng.uniform(1.5, 2.5, size=rows)) / _Z95
        self.slow: Matrix = np.zeros((rows, 0))  # extra latencies, NaN = none

    def _outcomes(self, attempts: Counts, failed_p: Matrix) -> Counts:
        failed_p = np.broadcast_to(failed_p, (attempts.size, 4))
        pvals = np.column_stack([failed_p, 1 - failed_p.sum(axis=1)])
        return np.asarray(self.rng.multinomial(attempts, pvals), np.int64)

    def force_outcome(self, outcome: int, count: Counts) -> None:
        """``count`` outcomes ``outcome`` per row; the rest redrawn from normal traffic."""
        failed_p = _OUTCOME_RATES.copy()
        failed_p[outcome] = 0.0
        self.outcomes = self._outcomes(self.attempts - count, failed_p)
        self.outcomes[:, outcome] += count

    def rows(self) -> Matrix:
        out = self.outcomes
        answered = out[:, APPROVED] + out[:, DECLINED] + self.extras[:, CHARGED]
        width = int(answered.max(initial=0))
        draws = self.rng.lognormal(
            np.log(self.median_s)[:, None], self.sigma[:, None], size=(answered.size, width)
        )
        draws[np.arange(width) >= answered[:, None]] = np.nan
        latencies: Matrix = np.sort(np.round(np.hstack([draws, self.slow]), 3), axis=1)  # NaN last
        count = (~np.isnan(latencies)).sum(axis=1)
        outcomes = out.sum(axis=1)
        per_outcome = np.divide(1.0, outcomes, out=np.zeros(outcomes.size), where=outcomes > 0)
        per_attempt = np.divide(
            1.0, self.attempts, out=np.zeros(outcomes.size), where=self.attempts > 0
        )
        matrix = np.column_stack(
            [
                self.attempts.astype(np.float64),
                out[:, TIMEOUT] * per_outcome,
                out[:, ERROR] * per_outcome,
                out[:, DECLINED] * per_outcome,
                out[:, CANCELLED] * per_outcome,
                np.minimum(1.0, self.extras * per_attempt[:, None]),
                np.minimum(1.0, (latencies > LATE_ANSWER_S).sum(axis=1) * per_attempt),
                _quantile(latencies, count, 0.5),
                _quantile(latencies, count, 0.95),
            ]
        )
        assert matrix.shape[1] == len(FEATURES)
        return matrix


def _quantile(ordered: Matrix, count: Counts, q: float) -> Matrix:
    """The tracker's quantile per row (:func:`models.incidents._quantile`, floor index)
    of the first ``count`` sorted values; 0 when there are none."""
    if ordered.shape[1] == 0:
        return np.zeros(ordered.shape[0])
    index = np.minimum(np.maximum(count - 1, 0), np.floor(q * count).astype(np.int64))
    picked = ordered[np.arange(ordered.shape[0]), index]
    return np.where(count > 0, picked, 0.0)


def _attempts(rng: np.random.Generator, n: int, low: float, high: float) -> Counts:
    return np.asarray(rng.poisson(rng.uniform(low, high, size=n)), np.int64)


def normal_rows(n: int, rng: np.random.Generator) -> Matrix:
    """``n`` rows of normal traffic (attempts ~ Poisson(U(3, 15)), possibly 0)."""
    return _Traffic(rng, _attempts(rng, n, 3, 15)).rows()


def busy_rows(n: int, rng: np.random.Generator) -> Matrix:
    """``n`` rows of normal traffic at busy terminals (Poisson(U(30, 60)) attempts):
    more traffic than the training data ever shows, and still normal."""
    return _Traffic(rng, _attempts(rng, n, 30, 60)).rows()


def _share_count(rng: np.random.Generator, n: Counts, low: float, high: float) -> Counts:
    """Per row, a count whose share of ``n`` is in [low, high] (at least 1)."""
    smallest = np.maximum(1, np.ceil(low * n - 1e-9))
    largest = np.maximum(smallest, np.floor(high * n + 1e-9))
    wanted = np.rint(rng.uniform(low, high, size=n.size) * n)
    return np.clip(wanted, smallest, largest).astype(np.int64)


def incident_rows(kind: str, n: int, rng: np.random.Generator) -> Matrix:
    """``n`` rows of incident ``kind`` (see the module docstring for the patterns)."""
    attempts = np.maximum(_MIN_INCIDENT_ATTEMPTS, _attempts(rng, n, 3, 15))
    traffic = _Traffic(rng, attempts)
    if kind == "timeouts":
        traffic.force_outcome(TIMEOUT, _share_count(rng, attempts, 0.5, 1.0))
        traffic.extras[:, CHARGED] = _share_count(rng, attempts, 0.3, 0.5)
    elif kind == "errors":
        traffic.force_outcome(ERROR, _share_count(rng, attempts, 0.5, 1.0))
    elif kind == "extra_debits":
        traffic.extras[:, EXTRA_DEBIT] = np.rint(0.8 * attempts)
    elif kind == "slow_issuer":
        slow = _share_count(rng, attempts, 0.2, 0.6)
        traffic.force_outcome(TIMEOUT, slow)
        late = rng.uniform(30.0, 60.0, size=(n, int(slow.max(initial=0))))
        late[np.arange(late.shape[1]) >= slow[:, None]] = np.nan
        traffic.slow = late
    elif kind == "mild_timeouts":
        traffic.force_outcome(TIMEOUT, _share_count(rng, attempts, 0.2, 0.4))
        traffic.extras[:, CHARGED] = 1
    else:
        raise ValueError(f"unknown incident kind {kind!r}")
    return traffic.rows()


__all__ = ["INCIDENT_KINDS", "busy_rows", "incident_rows", "normal_rows"]
