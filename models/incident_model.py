"""The incident model: is this terminal's recent traffic abnormal, how much, and why?

One row is one terminal at one evaluation time, its columns are
:data:`models.incident_features.FEATURES`. :class:`IncidentModel` is trained on normal
traffic only (novelty detection) and scores each row by its **evidence**: how
improbable the row's counts and latencies are on normal traffic, in decimal digits
(evidence 4 = a 1-in-10,000 event). Per signal:

* a share (timeouts, errors, declines, cancels, reversals, extra debits, failed but
  charged): the count behind it, ``k = round(share * attempts)``, against the fleet's
  usual rate ``p`` learned at fit, as a binomial upper tail:
  ``-log10 P(Binomial(attempts, p) >= k)``. Three timeouts out of 4 sales is strong
  evidence (5.4 at p = 1 %), one out of 3 is not (1.5): the small-count noise of a
  quiet terminal is priced in;
* the issuer latency p50 and p95 are not scored (they explain): one late answer on a
  quiet terminal makes both 75 s, which a Gaussian tail of ``log(latency)`` prices at
  40+ decimal digits, for a routine event (measured on simulated everyday traffic:
  it set the threshold so high that no duplicate or terminal incident could pass). The
  answers later than ``LATE_ANSWER_S`` are counted instead: ``late_answer_share`` is a
  share like the others. (For synthetic-only matrices of another width, every column
  is a two-sided Gaussian "level" signal: sklearn's estimator checks.)

A row's evidence is the sum of its ``top_signals`` strongest signals: an incident shows
in one signal (errors, extra debits, a slow bank) or two (timeouts with charged sales);
adding the weak, routine surprises of the other signals would only add noise. Rows with
fewer than ``min_attempts`` attempts have evidence 0: too few sales to tell.

Why not an IsolationForest? Measured on synthetic rows (``python -m
bench.incident_model_choice``, :mod:`models.data.incident_synthetic`: 20,000 normal rows
to train, 50,000 more to count false positives, 5,000 busy-terminal rows, 2,000 rows per
incident; each threshold at the 0.999 quantile of its training scores; rows below 3
attempts never flagged). Detection and false positives in %, time per call::

    method                          fpr  busy timeouts errors extra  slow  mild  1 row  200 rows
    evidence, top 2 (chosen)       0.10  0.28   100.0   95.6 100.0 100.0  46.9 0.4 ms  0.4 ms
    evidence, all signals summed   0.12  0.60    99.2   92.2  94.3 100.0  50.2 0.3 ms  0.9 ms
    evidence, strongest only       0.13  0.28    92.7  100.0 100.0 100.0  46.2 0.7 ms  0.5 ms
    IsolationForest, 200 trees     0.11  0.00    90.0   10.7   8.0  48.2  15.9   32 ms   36 ms
    IsolationForest, 50 trees      0.08  0.02    69.6   20.7   7.0  36.8  10.3    9 ms   10 ms
    LocalOutlierFactor, k=35       0.12  76.6   100.0  100.0 100.0 100.0  19.8    3 ms   71 ms
    robust z, largest              0.11  0.06    84.5  100.0 100.0 100.0   0.1 0.3 ms  0.3 ms

(``mild``: 20-40 % timeouts, reported, not required. Times on a 2-core VM, +-50 %
between runs.) The chosen model's misses are 2 errors out of 3 sales: 4.6 digits of
evidence against a threshold of 4.5-4.8 depending on the training sample, so its error
detection is 95.6-99.5 % over 8 training samples (mean 97.7 %); the other kinds 100 %.

The forest isolates a row by random splits *within* the training range, so 8 extra
debits out of 10 look no stranger than the one normal row with 1 out of 3: it misses
most error and extra-debit incidents. LOF finds them but flags busy terminals (more
sales than training ever saw) and is slow; a plain robust z ignores how many sales a
share is made of.

Sign conventions (sklearn's, for outlier detectors): :meth:`IncidentModel.score_samples`
is minus the evidence, so **higher = more normal** (0 = nothing unusual);
:meth:`~IncidentModel.decision_function` is ``score_samples - threshold_``, **negative =
abnormal**; :meth:`~IncidentModel.predict` is ``-1`` (abnormal) or ``+1`` (normal);
:meth:`~IncidentModel.anomaly_score` is in [0, 1], **higher = more abnormal**, 0.5 at the
threshold.

Example::

    >>> import numpy as np
    >>> from models.data.incident_synthetic import incident_rows, normal_rows
    >>> model = IncidentModel().fit(normal_rows(5000, np.random.default_rng(0)))
    >>> rows = incident_rows("errors", 3, np.random.default_rng(1))
    >>> model.predict(rows).tolist()
    [-1, -1, -1]
    >>> model.contributions(rows[0], top=1)[0][0]
    'error_share'

Persistence: :mod:`models.incident_model_file` (skops, not pickle).
"""

from __future__ import annotations

import math
from typing import Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from models.incident_features import FEATURES

Matrix = NDArray[np.float64]

MODEL_VERSION: Final = "incident-evidence-1"
"""The algorithm revision (this module's evidence rules): saved in the metadata."""

ANOMALY_SCALE: Final = 2.0
"""Decimal digits of evidence per logistic unit in :meth:`IncidentModel.anomaly_score`."""

# Column kinds: how a column turns into evidence (see the module docstring).
ATTEMPTS, SHARE, LATENCY, LEVEL = "attempts", "share", "latency", "level"
FEATURE_KINDS: Final[tuple[str, ...]] = tuple(
    ATTEMPTS if name == "attempts" else LATENCY if name.startswith("issuer_latency") else SHARE
    for name in FEATURES
)
"""The kind of each of :data:`FEATURES`, in order."""

_LN10: Final = math.log(10.0)
_IQR_TO_SIGMA: Final = 1.349  # IQR of a standard Gaussian
_RANGE98_TO_SIGMA: Final = 4.653  # width of its central 98 %
_MIN_SCALE: Final = 1e-3  # a share of 0.1 %, a millisecond, log(1.001)
_TAIL_QUANTILE: Final = 0.999  # where the latency tail width is calibrated
_LATENCY_FLOOR_S: Final = 0.05  # log(0) guard: no answer is not evidence of slowness


class IncidentModel(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Novelty detector for :data:`FEATURES` rows: evidence of abnormal traffic.

    Parameters
    ----------
    threshold_quantile : float, default=0.999
        Quantile of the training scores beyond which a row is abnormal: trained on
        normal traffic, about ``1 - threshold_quantile`` of normal rows are flagged.
    min_attempts : int, default=3
        Rows with fewer attempts (column ``attempts``) have evidence 0 and are never
        abnormal: too little traffic to tell.
    top_signals : int, default=2
        How many of a row's strongest signals make its evidence (measured: 2 beats 1
        and all, see the module docstring).

    Attributes
    ----------
    kinds_ : tuple of str
        Each column's kind: :data:`FEATURE_KINDS` for the 10 :data:`FEATURES` columns,
        otherwise every column a generic two-sided ``"level"`` (robust z), so that the
        estimator stays a general sklearn novelty detector (sklearn's estimator checks
        use 2- to 5-column data). debitwatch always passes :data:`FEATURES`.
    center_, scale_ : ndarray of shape (n_features,)
        Per column median and robust scale (IQR / 1.349; where 0, the central 98 %
        range / 4.653; never below 0.001): the "usual value" of explanations and the
        unit of :meth:`deviations`.
    rate_ : ndarray of shape (n_features,)
        Usual rate per attempt of each share column, ``(sum k + 0.5) / (sum n + 1)``
        (0 for the other columns).
    log_center_, log_scale_, tail_width_ : ndarray of shape (n_features,)
        Robust location and scale of ``log(latency)`` (of the raw value for ``"level"``
        columns) and the tail width factor (>= 1) of their z-scores.
    threshold_ : float
        Score cut-off: the ``1 - threshold_quantile`` quantile of the training scores.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fit on a DataFrame-like with string column names.
    """

    def __init__(
        self, *, threshold_quantile: float = 0.999, min_attempts: int = 3, top_signals: int = 2
    ) -> None:
        self.threshold_quantile = threshold_quantile
        self.min_attempts = min_attempts
        self.top_signals = top_signals

    # ------------------------------------------------------------------ fitting

    def fit(self, X: ArrayLike, y: object = None) -> Self:  # noqa: N803 (sklearn's X)
        """Learn normal traffic from ``X`` (normal rows only); ``y`` is ignored."""
        self._check_params()
        data = validate_data(self, X, dtype=np.float64)
        self.kinds_ = _kinds_for(data.shape[1])
        self.center_, self.scale_ = _robust(data)
        self.rate_ = np.zeros(data.shape[1])
        self.log_center_ = np.zeros(data.shape[1])
        self.log_scale_ = np.ones(data.shape[1])
        self.tail_width_ = np.ones(data.shape[1])
        attempts = self._attempts(data)
        for column, kind in enumerate(self.kinds_):
            if kind == SHARE:
                counts = _counts(data[:, column], attempts)
                self.rate_[column] = (counts.sum() + 0.5) / (attempts.sum() + 1.0)
            elif kind in (LATENCY, LEVEL):
                values = _level_values(data[:, column], kind)
                center, scale = _robust(values[:, None])
                self.log_center_[column], self.log_scale_[column] = center[0], scale[0]
                z = (values - center[0]) / scale[0]
                if kind == LEVEL:
                    z, tail = np.abs(z), (1 - _TAIL_QUANTILE) / 2
                else:
                    tail = 1 - _TAIL_QUANTILE
                reference = float(-special.ndtri(tail))
                self.tail_width_[column] = max(
                    1.0, float(np.quantile(z, _TAIL_QUANTILE)) / reference
                )
        self.threshold_ = float(np.quantile(-self._evidence(data), 1 - self.threshold_quantile))
        return self

    def _check_params(self) -> None:
        if not 0.0 < self.threshold_quantile < 1.0:
            raise ValueError(
                f"threshold_quantile must be in (0, 1), got {self.threshold_quantile!r}"
            )
        if not isinstance(self.min_attempts, int | np.integer) or self.min_attempts < 0:
            raise ValueError(f"min_attempts must be an int >= 0, got {self.min_attempts!r}")
        if not isinstance(self.top_signals, int | np.integer) or self.top_signals < 1:
            raise ValueError(f"top_signals must be an int >= 1, got {self.top_signals!r}")

    # ------------------------------------------------------------------ scoring

    @property
    def offset_(self) -> float:
        """sklearn's name for :attr:`threshold_`: ``decision_function = score_samples -
        offset_``."""
        return self.threshold_

    def score_samples(self, X: ArrayLike) -> Matrix:  # noqa: N803 (sklearn's X)
        """Minus the evidence of each row: **higher = more normal**, 0 = nothing unusual.

        The evidence is in decimal digits: -6 means the row's strongest signals are as
        improbable on normal traffic as a one-in-a-million event.
        """
        return -self._evidence(self._validate(X))

    def decision_function(self, X: ArrayLike) -> Matrix:  # noqa: N803 (sklearn's X)
        """``score_samples(X) - threshold_``: **negative = abnormal**."""
        return self.score_samples(X) - self.threshold_

    def predict(self, X: ArrayLike) -> NDArray[np.int_]:  # noqa: N803 (sklearn's X)
        """``-1`` for abnormal rows, ``+1`` for normal ones (sklearn's outlier convention).

        Rows with fewer than ``min_attempts`` attempts are always ``+1``.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def judge(self, X: ArrayLike) -> tuple[NDArray[np.bool_], Matrix]:  # noqa: N803 (sklearn's X)
        """``(predict(X) == -1, anomaly_score(X))`` from one evaluation of the rows.

        The tracker needs both for every row it scores at every step; computing the
        evidence once instead of twice halves the model's share of a step.
        """
        decision = -self._evidence(self._validate_rows(X)) - self.threshold_
        scores = np.asarray(special.expit(-decision / ANOMALY_SCALE), np.float64)
        return np.asarray(decision < 0), scores

    def anomaly_score(self, X: ArrayLike) -> Matrix:  # noqa: N803 (sklearn's X)
        """How abnormal each row is, in [0, 1]: the severity input.

        ``1 / (1 + exp(decision_function / ANOMALY_SCALE))``: 0.5 exactly at the
        threshold, decreasing in :meth:`score_samples`; every 2 decimal digits of
        evidence beyond the threshold is one logistic unit (0.73 at 2 digits beyond,
        0.88 at 4; a typical normal row, about 4 digits below, scores about 0.1).
        """
        return np.asarray(special.expit(-self.decision_function(X) / ANOMALY_SCALE), np.float64)

    def deviations(self, X: ArrayLike) -> Matrix:  # noqa: N803 (sklearn's X)
        """Robust z-scores ``|x - center_| / scale_`` per column (>= 0): how far each
        value is from normal traffic's median, in robust standard deviations.

        The ``attempts`` column is always 0: it is how much traffic the row is made of,
        not a symptom (a busy terminal is not an incident's cause).
        """
        data = self._validate(X)
        z = np.abs(data - self.center_) / self.scale_
        z[:, [i for i, kind in enumerate(self.kinds_) if kind == ATTEMPTS]] = 0.0
        return np.asarray(z, np.float64)

    def contributions(self, x_row: ArrayLike, top: int = 3) -> list[tuple[str, float, float]]:
        """The ``top`` features of ``x_row`` furthest from their usual value, as
        ``(feature name, value, usual value)``: the plain-language explanation's facts.

        Ranked by robust z (:meth:`deviations`), ties by column order, ``attempts``
        never; the usual value is :attr:`center_`. (Ranking by evidence instead names
        the incident's own feature as often, or slightly less:
        ``bench/incident_model_choice.py``.)

        >>> model.contributions(row)  # doctest: +SKIP
        [('timeout_share', 0.75, 0.0), ('failed_but_charged_share', 0.5, 0.0), ...]
        """
        row = np.asarray(x_row, dtype=np.float64).reshape(1, -1)
        z = self.deviations(row)[0]
        names = self._feature_names()
        columns = [i for i, kind in enumerate(self.kinds_) if kind != ATTEMPTS]
        order = sorted(columns, key=lambda i: (-z[i], i))
        return [(names[i], float(row[0, i]), float(self.center_[i])) for i in order[:top]]

    # ------------------------------------------------------------------ internals

    def _validate(self, X: ArrayLike) -> Matrix:  # noqa: N803 (sklearn's X)
        check_is_fitted(self)
        data: Matrix = validate_data(self, X, dtype=np.float64, reset=False)
        return data

    def _validate_rows(self, X: ArrayLike) -> Matrix:  # noqa: N803 (sklearn's X)
        """:meth:`_validate`, with a short way for what the tracker passes at every step
        (a finite float64 matrix of the fitted width): scikit-learn's full validation
        costs about a millisecond a call, more than scoring a step's rows."""
        if (
            isinstance(X, np.ndarray)
            and X.dtype == np.float64
            and X.ndim == 2
            and X.shape[1] == getattr(self, "n_features_in_", -1)
            and getattr(self, "feature_names_in_", None) is None
            and bool(np.isfinite(X).all())
        ):
            return X
        return self._validate(X)

    def _feature_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(name) for name in names]
        if self.kinds_ == FEATURE_KINDS:
            return list(FEATURES)
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _attempts(self, data: Matrix) -> Matrix:
        if ATTEMPTS not in self.kinds_:
            return np.zeros(data.shape[0])
        return np.maximum(np.rint(data[:, self.kinds_.index(ATTEMPTS)]), 0.0)

    def _eligible(self, data: Matrix) -> NDArray[np.bool_]:
        if ATTEMPTS not in self.kinds_:
            return np.ones(data.shape[0], dtype=bool)
        return np.asarray(self._attempts(data) >= self.min_attempts)

    def _column_evidence(self, data: Matrix) -> Matrix:
        evidence = np.zeros_like(data)
        attempts = self._attempts(data)
        for column, kind in enumerate(self.kinds_):
            if kind == SHARE:
                counts = _counts(data[:, column], attempts).astype(np.int64)
                # P(K >= k) = P(K > k - 1); bdtrc(-1, ...) = 1. Integer arguments: the
                # float signature is deprecated and 50x slower.
                tail = special.bdtrc(counts - 1, attempts.astype(np.int64), self.rate_[column])
                evidence[:, column] = -np.log10(np.maximum(tail, 1e-300))
            elif kind in (LATENCY, LEVEL):
                values = _level_values(data[:, column], kind)
                z = (values - self.log_center_[column]) / self.log_scale_[column]
                z /= self.tail_width_[column]
                if kind == LEVEL:  # two-sided: log10(2 * sf(|z|))
                    log_tail = math.log(2.0) + special.log_ndtr(-np.abs(z))
                else:
                    log_tail = special.log_ndtr(-z)
                evidence[:, column] = np.maximum(0.0, -log_tail / _LN10)
        return evidence

    def _evidence(self, data: Matrix) -> Matrix:
        """Sum of each row's ``top_signals`` strongest signals (0 below min_attempts)."""
        per_column = self._column_evidence(data)
        # The latency quantiles explain, they do not score: on a quiet terminal one late
        # answer makes p50 = p95 = 75 s, 40+ digits of Gaussian "evidence" for a routine
        # event (measured on the default profile). The late answers are counted instead
        # (late_answer_share, a binomial signal like the other shares).
        single = [i for i, kind in enumerate(self.kinds_) if kind in (SHARE, LEVEL)]
        stacked = per_column[:, single]
        strongest = np.sort(stacked, axis=1)[:, -self.top_signals :]
        return np.asarray(strongest.sum(axis=1) * self._eligible(data), np.float64)


def _kinds_for(n_features: int) -> tuple[str, ...]:
    return FEATURE_KINDS if n_features == len(FEATURES) else (LEVEL,) * n_features


def _counts(shares: Matrix, attempts: Matrix) -> Matrix:
    return np.clip(np.rint(shares * attempts), 0, attempts)


def _level_values(values: Matrix, kind: str) -> Matrix:
    return np.log(np.maximum(values, _LATENCY_FLOOR_S)) if kind == LATENCY else values


def _robust(data: Matrix) -> tuple[Matrix, Matrix]:
    """Per column median and robust scale (IQR, else central 98 %, never < 0.001)."""
    low, q1, center, q3, high = np.quantile(data, [0.01, 0.25, 0.5, 0.75, 0.99], axis=0)
    scale = (q3 - q1) / _IQR_TO_SIGMA
    scale = np.where(scale > 0, scale, (high - low) / _RANGE98_TO_SIGMA)
    return np.asarray(center, np.float64), np.maximum(scale, _MIN_SCALE)


__all__ = [
    "ANOMALY_SCALE",
    "FEATURE_KINDS",
    "MODEL_VERSION",
    "IncidentModel",
]
