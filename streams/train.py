"""``debitwatch train``: fit the incident model on captures of normal traffic.

The captures are replayed through the same core as the workers, with a
:class:`~models.incident_scoring.RecordingScorer` in place of a model: every row the
workers would score (one per active terminal and step) becomes a training row, so the
model learns exactly the distribution it will see. The file written is a skops file
with its metadata (models/incident_model.py): a worker refuses a model trained on other
features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np

from models.config import DetectionConfig
from models.incident_model import IncidentModel
from models.incident_model_file import save_model
from models.incident_scoring import RecordingScorer
from models.incidents import IncidentConfig
from streams.replay import replay

# The training rows' quantile past which a row is abnormal: a row more extreme than all
# but 3 in a million of normal traffic. Chosen on simulated days (docs/incidents.md):
# 0.999 (the estimator's sklearn-style default) raised ~150 false incidents a day.
THRESHOLD_QUANTILE: Final = 0.999997


@dataclasses.dataclass
class TrainingSummary:
    rows: int
    transactions_seen: int
    training_hash: str
    threshold: float
    seconds: float
    path: Path


def captures_hash(paths: Sequence[Path]) -> str:
    """sha256 over the captures' bytes, in order: which data a model was trained on."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def training_rows(
    paths: Sequence[Path],
    config: DetectionConfig | None = None,
    incident_config: IncidentConfig | None = None,
    *,
    min_attempts: int = 3,
) -> tuple[np.ndarray, int]:
    """The feature rows the workers would score on ``paths``, and the events replayed."""
    recorder = RecordingScorer(min_attempts)
    with open(os.devnull, "wb") as sink:
        summary = replay(
            paths, sink, config=config, incidents=recorder, incident_config=incident_config
        )
    return recorder.rows, summary.events


def train(
    paths: Sequence[Path],
    out: Path,
    *,
    model: IncidentModel | None = None,
    config: DetectionConfig | None = None,
    incident_config: IncidentConfig | None = None,
) -> TrainingSummary:
    """Fit ``model`` (default parameters when None) on ``paths`` and save it to ``out``."""
    started = time.perf_counter()
    model = model or IncidentModel(threshold_quantile=THRESHOLD_QUANTILE)
    rows, events = training_rows(
        paths, config, incident_config, min_attempts=int(model.min_attempts)
    )
    if len(rows) < 100:
        raise ValueError(
            f"only {len(rows)} feature rows in the captures: train on at least an hour of "
            "traffic of a few dozen terminals"
        )
    fitted = model.fit(rows)
    digest = captures_hash(paths)
    trained_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(fitted, out, training_hash=digest, trained_at=trained_at)
    return TrainingSummary(
        rows=len(rows),
        transactions_seen=events,
        training_hash=digest,
        threshold=float(fitted.threshold_),
        seconds=time.perf_counter() - started,
        path=out,
    )
