"""The incident model's file: save and load a fitted :class:`IncidentModel` with skops.

A skops file, never pickle: loading first lists the types the file would build and
refuses anything but scikit-learn's and skops' defaults and :class:`IncidentModel`.
The file carries metadata (format and model version, features, training-data hash,
date, scikit-learn version); a file of another format version, or trained on other
features than this debitwatch computes, is refused with a :class:`ModelError` that says
what to do. :class:`LoadedModel` is also the tracker's scorer
(:class:`models.incidents.IncidentScorer`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import numpy as np
import sklearn
import skops.io
from numpy.typing import NDArray
from sklearn.utils.validation import check_is_fitted

from models.incident_features import FEATURES
from models.incident_model import FEATURE_KINDS, MODEL_VERSION, IncidentModel

Matrix = NDArray[np.float64]

FORMAT_VERSION: Final = 1
"""Layout of the saved file (:func:`save_model`); a file of another version is refused."""


class ModelError(ValueError):
    """An incident model file that cannot be used (missing, corrupt, unsafe, stale)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """What a model file says about itself (saved next to the estimator)."""

    format_version: int
    model_version: str
    features: tuple[str, ...]
    training_hash: str
    trained_at: str  # RFC 3339, with its UTC offset
    sklearn_version: str


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model read by :func:`load_model`, with its metadata.

    Also the :class:`models.incidents.IncidentScorer` of the tracker: :meth:`assess`,
    :meth:`usual`, :meth:`deviations`.
    """

    model: IncidentModel
    metadata: ModelMetadata

    def assess(
        self, rows: NDArray[np.float64] | Sequence[Sequence[float]]
    ) -> list[tuple[bool, float]]:
        """(abnormal, anomaly score in [0, 1]) per row of :data:`FEATURES` values."""
        if len(rows) == 0:
            return []
        data = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
        abnormal, scores = self.model.judge(data)
        return list(zip(abnormal.tolist(), scores.tolist(), strict=True))

    def min_attempts(self) -> int:
        """Rows with fewer attempts score as normal (:class:`IncidentModel` ``min_attempts``)."""
        return int(self.model.min_attempts)

    def usual(self) -> Sequence[float]:
        """The median of each feature on the training traffic."""
        return [float(v) for v in self.model.center_]

    def deviations(self, row: Sequence[float]) -> Sequence[float]:
        """Robust z-score of each feature of ``row`` (>= 0; the ranking of
        :meth:`IncidentModel.contributions`)."""
        data = np.asarray(row, dtype=np.float64).reshape(1, -1)
        return [float(v) for v in self.model.deviations(data)[0]]


# Types a model file may hold beyond skops' defaults: nothing else is ever loaded.
_ALLOWED_TYPES: Final = frozenset({f"{IncidentModel.__module__}.{IncidentModel.__qualname__}"})


def save_model(
    model: IncidentModel, path: str | os.PathLike[str], *, training_hash: str, trained_at: str
) -> None:
    """Write a fitted ``model`` to ``path`` (skops format, not pickle), with metadata.

    The file holds ``{"format_version": FORMAT_VERSION, "metadata": {...}, "model":
    model}``; the metadata are :data:`MODEL_VERSION`, :data:`FEATURES`, the training
    data's hash (``training_hash``, e.g. the SHA-256 of the capture), ``trained_at``
    (RFC 3339 with an offset, e.g. ``2024-05-01T10:00:00Z``) and the sklearn version.
    Written to a temporary file first, then renamed: a reader never sees half a file.
    Raises ``ValueError`` for an unfitted model, one not fitted on :data:`FEATURES`
    columns, or a ``trained_at`` that is not RFC 3339.
    """
    check_is_fitted(model)
    if model.kinds_ != FEATURE_KINDS:
        raise ValueError(f"model not fitted on the {len(FEATURES)} incident features")
    try:
        stamp = datetime.fromisoformat(trained_at)
    except ValueError as error:
        raise ValueError(f"trained_at is not RFC 3339: {trained_at!r}") from error
    if stamp.tzinfo is None or "T" not in trained_at.upper():
        raise ValueError(f"trained_at is not RFC 3339 with an offset: {trained_at!r}")
    if not training_hash:
        raise ValueError("training_hash must not be empty")
    state = {
        "format_version": FORMAT_VERSION,
        "metadata": {
            "model_version": MODEL_VERSION,
            "features": list(FEATURES),
            "training_hash": training_hash,
            "trained_at": trained_at,
            "sklearn_version": sklearn.__version__,
        },
        "model": model,
    }
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    try:
        skops.io.dump(state, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a model written by :func:`save_model`, safely.

    skops loads only the types it trusts by default (builtins, numpy arrays) plus the
    ones the file declares *and* our allow-list holds (:class:`IncidentModel`); any
    other type is refused before anything is built. Raises :class:`ModelError` when
    the file is missing, is not a skops file or is corrupt, holds unexpected types,
    has another format version, or was trained on other features than
    :data:`FEATURES` (retrain then).
    """
    target = Path(path)
    if not target.is_file():
        raise ModelError(
            f"incident model not found at {target}: train one with "
            f"`debitwatch train --from CAPTURE -o {target}`"
        )
    try:
        untrusted = skops.io.get_untrusted_types(file=target)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{target} is not an incident model file (skops): {error}") from error
    unexpected = sorted(set(untrusted) - _ALLOWED_TYPES)
    if unexpected:
        raise ModelError(f"{target} holds unexpected types {unexpected}: refusing to load it")
    try:
        state = skops.io.load(target, trusted=list(untrusted))
    except Exception as error:  # skops raises many kinds on a damaged file
        raise ModelError(f"{target} is a damaged incident model file: {error}") from error
    return _loaded(target, state)


def _loaded(target: Path, state: object) -> LoadedModel:
    if not isinstance(state, dict) or not {"format_version", "metadata", "model"} <= set(state):
        raise ModelError(f"{target} is not an incident model file (no model and metadata)")
    version = state["format_version"]
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{target} has model file format {version!r}, this debitwatch reads "
            f"{FORMAT_VERSION}: retrain"
        )
    meta, model = state["metadata"], state["model"]
    try:
        metadata = ModelMetadata(
            format_version=version,
            model_version=str(meta["model_version"]),
            features=tuple(str(name) for name in meta["features"]),
            training_hash=str(meta["training_hash"]),
            trained_at=str(meta["trained_at"]),
            sklearn_version=str(meta["sklearn_version"]),
        )
    except (KeyError, TypeError) as error:
        raise ModelError(f"{target} has incomplete metadata: {error!r}") from error
    if metadata.features != FEATURES:
        raise ModelError(
            f"model was trained on features {list(metadata.features)}, this debitwatch "
            f"computes {list(FEATURES)}: retrain"
        )
    if not isinstance(model, IncidentModel) or getattr(model, "kinds_", None) != FEATURE_KINDS:
        raise ModelError(f"{target} does not hold a fitted incident model")
    return LoadedModel(model, metadata)


__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "ModelError",
    "ModelMetadata",
    "load_model",
    "save_model",
]
