"""Which incident scorer runs: the model a setting names, or a recorder for training.

The tracker (:mod:`models.incidents`) scores through the
:class:`~models.incidents.IncidentScorer` protocol; a loaded model
(:class:`~models.incident_model_file.LoadedModel`) is one, scoring all of a step's rows in
one call (scikit-learn's per-call overhead is paid once per step, not per terminal).
:class:`RecordingScorer` is what ``debitwatch train`` replays the captures with: it
collects every row and calls none abnormal, so training sees exactly the rows the
workers will score.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.incident_features import FEATURES
from models.incident_model_file import LoadedModel, load_model

DEFAULT_MODEL: Final = Path(__file__).parent / "data" / "incident-model.skops"


class RecordingScorer:
    """Collects every scored row (training data); calls nothing abnormal.

    ``min_attempts`` must be the model's (rows below it are never scored, so they are
    not training rows either).
    """

    def __init__(self, min_attempts: int = 3) -> None:
        self._min_attempts = min_attempts
        self.batches: list[NDArray[np.float64]] = []

    @property
    def rows(self) -> NDArray[np.float64]:
        """Every row recorded, in order."""
        if not self.batches:
            return np.empty((0, len(FEATURES)))
        return np.vstack(self.batches)

    def assess(self, rows: NDArray[np.float64]) -> list[tuple[bool, float]]:
        self.batches.append(np.array(rows, dtype=np.float64))
        return [(False, 0.0)] * len(rows)

    def min_attempts(self) -> int:
        return self._min_attempts

    def usual(self) -> Sequence[float]:
        return []

    def deviations(self, row: Sequence[float]) -> Sequence[float]:
        return []


def model_path(spec: str) -> Path | None:
    """Where the model named by a setting is: ``default`` is the one ``make model``
    trains into the package, ``none`` disables incident scoring, anything else a path."""
    if spec == "none":
        return None
    return DEFAULT_MODEL if spec in ("", "default") else Path(spec)


def load_scorer(spec: str) -> LoadedModel | None:
    """The scorer for a setting, or None (disabled); ``ModelError`` if it cannot load."""
    path = model_path(spec)
    return None if path is None else load_model(path)
