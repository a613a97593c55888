"""Scoring the detector against the simulator's ground truth (``debitwatch evaluate``).

A detection is an alert firing at the end of the alert stream (its last state); it is
a true positive when the truth has the same ``alert_id`` (the id is a function of the
transaction key and the kind, so this also checks both). Precision and recall are per
kind and overall (micro-averaged over transactions x kinds).

Conventions where a ratio is 0/0: a kind with nothing to find and nothing found has
precision and recall 1.0 (there was no way to be wrong); precision with no detections
but something to find is 1.0 and its recall 0.0.

The probable cause is scored on true positives: accuracy and a confusion table
(truth -> predicted), as is ``paid_again``.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Final

from models.alerts import TRANSACTION_KINDS, Alert, Kind, Status
from models.final_states import FinalStates
from models.instants import MICROS, micros_of
from models.truth import IncidentTruth, TruthRecord


@dataclasses.dataclass
class KindScore:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclasses.dataclass
class Evaluation:
    per_kind: dict[str, KindScore]
    overall: KindScore
    causes: Counter[tuple[str, str]]  # (truth, predicted) over true positives
    paid_again: Counter[tuple[bool, bool]]
    false_positive_ids: list[str]
    false_negative_ids: list[str]

    @property
    def cause_accuracy(self) -> float:
        total = sum(self.causes.values())
        right = sum(n for (truth, predicted), n in self.causes.items() if truth == predicted)
        return right / total if total else 1.0

    @property
    def paid_again_accuracy(self) -> float:
        total = sum(self.paid_again.values())
        right = sum(n for (truth, predicted), n in self.paid_again.items() if truth == predicted)
        return right / total if total else 1.0


def evaluate(truth: Iterable[TruthRecord], alerts: Iterable[Alert]) -> Evaluation:
    """Compare the final firing alerts with the truth."""
    expected = {record.alert_id: record for record in truth}
    firing = {alert.alert_id: alert for alert in FinalStates.of(alerts).firing()}
    kinds = [kind.value for kind in TRANSACTION_KINDS]
    kinds += sorted({r.kind.value for r in expected.values()} - set(kinds))
    kinds += sorted({a.kind.value for a in firing.values()} - set(kinds))
    per_kind = {kind: KindScore() for kind in kinds}
    causes: Counter[tuple[str, str]] = Counter()
    paid_again: Counter[tuple[bool, bool]] = Counter()
    false_positives = []
    for alert_id, alert in firing.items():
        record = expected.get(alert_id)
        if record is None:
            per_kind[alert.kind.value].false_positives += 1
            false_positives.append(alert_id)
            continue
        per_kind[alert.kind.value].true_positives += 1
        causes[(record.probable_cause.value, alert.probable_cause.value)] += 1
        paid_again[(record.paid_again, alert.paid_again)] += 1
    false_negatives = [alert_id for alert_id in expected if alert_id not in firing]
    for alert_id in false_negatives:
        per_kind[expected[alert_id].kind.value].false_negatives += 1
    overall = KindScore(
        sum(s.true_positives for s in per_kind.values()),
        sum(s.false_positives for s in per_kind.values()),
        sum(s.false_negatives for s in per_kind.values()),
    )
    return Evaluation(
        per_kind,
        overall,
        causes,
        paid_again,
        sorted(false_positives),
        sorted(false_negatives),
    )


# ------------------------------------------------------------------ incidents

# An incident keeps showing in the scored window for lag + window after it ends
# (models/incidents.py: 60 s + 180 s by default); a detection that late still names it.
INCIDENT_TAIL_S: Final = 300


@dataclasses.dataclass
class IncidentScore:
    """How the ``terminal_incident`` alerts compare with the injected incidents.

    An incident is *detected* when a ``terminal_incident`` alert fired for one of its
    terminals (a terminal incident's ``terminal_id``, a merchant incident's
    ``terminals``) between its start and ``INCIDENT_TAIL_S`` after its end; the delay is
    that first detection's ``detected_at`` minus the start (event time). An incident
    alert that matches no injected incident is a false incident.
    """

    injected: int
    detected: int
    delays_s: list[float]
    false_alerts: list[str]
    alerts_per_incident: dict[str, int]
    by_type: dict[str, tuple[int, int]]  # incident type -> (injected, detected)

    @property
    def detection_rate(self) -> float:
        return self.detected / self.injected if self.injected else 1.0

    @property
    def median_delay_s(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None


def evaluate_incidents(
    incidents: Iterable[IncidentTruth], alerts: Iterable[Alert]
) -> IncidentScore:
    """Match every fired incident alert with the injected incidents (see IncidentScore)."""
    fired: dict[str, tuple[set[str], int]] = {}  # alert_id -> (terminals, detected)
    for alert in alerts:
        if alert.kind is not Kind.TERMINAL_INCIDENT or alert.status is not Status.FIRING:
            continue
        terminals = set(alert.terminals or ())
        if alert.terminal_id is not None:
            terminals.add(alert.terminal_id)
        if alert.alert_id not in fired and terminals:
            fired[alert.alert_id] = (terminals, micros_of(alert.detected_at))
    truth = list(incidents)
    matched: set[str] = set()
    delays: list[float] = []
    per_incident: dict[str, int] = {}
    by_type: dict[str, tuple[int, int]] = {}
    for incident in truth:
        start = micros_of(incident.start)
        end = micros_of(incident.end) + INCIDENT_TAIL_S * MICROS
        terminals = set(incident.terminal_ids)
        hits = sorted(
            (detected, alert_id)
            for alert_id, (covered, detected) in fired.items()
            if covered & terminals and start <= detected <= end
        )
        matched.update(alert_id for _, alert_id in hits)
        per_incident[incident.incident_id] = len(hits)
        injected, detected = by_type.get(incident.incident, (0, 0))
        by_type[incident.incident] = (injected + 1, detected + (1 if hits else 0))
        if hits:
            delays.append((hits[0][0] - start) / MICROS)
    return IncidentScore(
        injected=len(truth),
        detected=sum(1 for n in per_incident.values() if n),
        delays_s=delays,
        false_alerts=sorted(set(fired) - matched),
        alerts_per_incident=per_incident,
        by_type=by_type,
    )
