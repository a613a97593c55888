"""Which incident model? Detection at a fixed false-positive rate, and scoring time.

    .venv/bin/python -m bench.incident_model_choice [--train 20000] [--seed 1]

Trains every candidate on the same synthetic normal rows
(:mod:`models.data.incident_synthetic`), sets each one's threshold at the 0.999
quantile of its training scores, and applies the same rule to all: rows with fewer than
3 attempts are never abnormal. (For the baselines the quantile is taken over the
training rows that can be flagged, attempts >= 3, which favours them; the evidence
model scores the others 0.) Then it prints, per candidate:

* ``fpr %``: normal rows flagged, on 50,000 fresh normal rows;
* ``busy %``: normal rows flagged at busy terminals (Poisson(30-60) attempts, more
  than training ever shows);
* detection in % per incident kind (2,000 rows each; ``mild`` is the weak end of an
  outage, 20-40 % timeouts: reported, not required);
* the time to score 1 row and 200 rows (median of 50 calls).

A second table shows how often the first of :meth:`IncidentModel.contributions` (ranked
by robust z, ``|x - center_| / scale_``) names the incident's own feature, and how often
a ranking by each feature's evidence (what the score is made of) would.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from models.data.incident_synthetic import INCIDENT_KINDS, busy_rows, incident_rows, normal_rows
from models.incident_features import FEATURES
from models.incident_model import IncidentModel

Matrix = np.ndarray
Scorer = Callable[[Matrix], Matrix]  # higher = more normal

QUANTILE = 0.999
MIN_ATTEMPTS = 3
KINDS = (*INCIDENT_KINDS, "mild_timeouts")
EXPECTED = {
    "timeouts": {"timeout_share", "failed_but_charged_share"},
    "errors": {"error_share"},
    "extra_debits": {"extra_debit_share"},
    "slow_issuer": {"issuer_latency_p95_s", "issuer_latency_p50_s"},
}


def candidates(train: Matrix) -> dict[str, tuple[Scorer, bool]]:
    """name -> (score function, whether its threshold is taken over all training rows)."""
    chosen = IncidentModel().fit(train)
    robust = (train - chosen.center_) / chosen.scale_
    out: dict[str, tuple[Scorer, bool]] = {
        "evidence, top 2 signals (chosen)": (chosen.score_samples, True),
        "evidence, all signals summed": (
            IncidentModel(top_signals=99).fit(train).score_samples,
            True,
        ),
        "evidence, strongest signal only": (
            IncidentModel(top_signals=1).fit(train).score_samples,
            True,
        ),
    }
    for trees in (200, 50):
        forest = IsolationForest(n_estimators=trees, random_state=0).fit(train)
        out[f"IsolationForest, {trees} trees"] = (forest.score_samples, False)
    lof = LocalOutlierFactor(n_neighbors=35, novelty=True).fit(robust)

    def lof_score(x: Matrix) -> Matrix:
        return np.asarray(lof.score_samples((x - chosen.center_) / chosen.scale_))

    def robust_z(x: Matrix) -> Matrix:
        return np.asarray(-chosen.deviations(x).max(axis=1))

    out["LocalOutlierFactor, 35 neighbours"] = (lof_score, False)
    out["robust z, largest"] = (robust_z, False)
    return out


def timing(score: Scorer, rows: Matrix) -> float:
    """Median milliseconds of one call on ``rows``."""
    score(rows)
    calls = []
    for _ in range(50):
        start = time.perf_counter()
        score(rows)
        calls.append(time.perf_counter() - start)
    return statistics.median(calls) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=20_000, help="normal training rows")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    train = normal_rows(args.train, rng)
    normal = normal_rows(50_000, rng)
    busy = busy_rows(5_000, rng)
    incidents = {kind: incident_rows(kind, 2_000, rng) for kind in KINDS}
    eligible = train[:, 0] >= MIN_ATTEMPTS

    header = f"{'method':34s} {'fpr %':>6s} {'busy %':>6s} " + " ".join(
        f"{kind.split('_')[0][:8]:>8s}" for kind in KINDS
    )
    print(header + f" {'1 row':>8s} {'200 rows':>8s}")
    for name, (score, all_rows) in candidates(train).items():
        training = score(train) if all_rows else score(train[eligible])
        threshold = np.quantile(training, 1 - QUANTILE)

        def flagged(rows: Matrix, score: Scorer = score, threshold: float = threshold) -> str:
            hits = (score(rows) < threshold) & (rows[:, 0] >= MIN_ATTEMPTS)
            return f"{hits.mean() * 100:.2f}"

        line = f"{name:34s} {flagged(normal):>6s} {flagged(busy):>6s} "
        line += " ".join(f"{flagged(incidents[kind]):>8s}" for kind in KINDS)
        line += f" {timing(score, normal[:1]):7.2f}ms {timing(score, normal[:200]):6.2f}ms"
        print(line)

    model = IncidentModel().fit(train)
    print()
    print(
        f"{'first contribution is the incident feature, %':48s} {'robust z':>9s} {'evidence':>9s}"
    )
    for kind, expected in EXPECTED.items():
        rows = incidents[kind]
        hits_z = np.mean([model.contributions(row, top=1)[0][0] in expected for row in rows])
        evidence_first = model._column_evidence(rows).argmax(axis=1)
        hits_evidence = np.mean([FEATURES[i] in expected for i in evidence_first])
        print(f"{kind:48s} {hits_z * 100:9.1f} {hits_evidence * 100:9.1f}")


if __name__ == "__main__":
    main()
