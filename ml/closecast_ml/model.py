"""A trained model: an XGBoost booster plus its metadata (feature set, params, lineage, metrics). Never pickled.

On disk / in S3 it is two objects: the booster in XGBoost's own UBJSON format (`model.ubj`) and the metadata as
JSON (`metadata.json`). `ModelArtifact.from_bytes` checks both and raises `ArtifactError`, with a sentence a
person can act on, when either is unreadable or they do not belong together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from closecast import __version__
from closecast_ml.features import FEATURE_SET_VERSIONS, FEATURE_SETS, _index_weights, day_matrix

FORMAT_VERSION = 1
MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"
REQUIRED_KEYS = ("format_version", "feature_set", "features", "params", "n_rounds", "days_trained")


class ArtifactError(ValueError):
    """A model artifact that cannot be used: unreadable model bytes or metadata, or the two disagree."""


def library_versions() -> dict[str, str]:
    return {
        "xgboost": xgb.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "closecast": __version__,
    }


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ModelArtifact:
    """The booster and its metadata; `predict` computes the features itself from Kaggle rows."""

    def __init__(self, booster: xgb.Booster, metadata: Mapping[str, Any]) -> None:
        self.booster = booster
        self.metadata: dict[str, Any] = dict(metadata)

    @property
    def feature_set(self) -> str:
        return str(self.metadata["feature_set"])

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])

    @property
    def stats(self) -> dict[str, Any] | None:
        stats = self.metadata.get("stats")
        return dict(stats) if stats else None

    @property
    def n_rounds(self) -> int:
        return int(self.booster.num_boosted_rounds())

    # --- prediction ---------------------------------------------------------------------------------------

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Predictions (float64) for a feature matrix in the order of `self.features`."""
        if len(matrix) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.inplace_predict(matrix, validate_features=False), dtype=np.float64)

    def predict(self, rows: pd.DataFrame, *, center: bool = False) -> np.ndarray:
        """A prediction (bps) for every row of `rows` (one or more days, Kaggle columns; `target` not needed
        and never read), in row order. `center`: subtract, at each (date_id, second), the index-weighted mean
        of the predictions there, so that they are zero on average like the real targets."""
        predictions = self.predict_matrix(day_matrix(rows, self.feature_set, self.stats))
        return center_predictions(rows, predictions) if center else predictions

    # --- bytes ----------------------------------------------------------------------------------------------

    def to_bytes(self) -> tuple[bytes, bytes]:
        """(model in XGBoost's UBJSON format, metadata JSON)."""
        model = bytes(self.booster.save_raw(raw_format="ubj"))
        # the model file's checksum travels in its metadata: a damaged file is refused before XGBoost parses it
        # (its parser can crash the process on some damaged inputs instead of raising)
        meta = {**self.metadata, "model_sha256": hashlib.sha256(model).hexdigest()}
        return model, json.dumps(meta, indent=1, sort_keys=True, allow_nan=False).encode()

    def digest(self) -> str:
        """sha256 of the model bytes: identifies the booster in a child's lineage."""
        return hashlib.sha256(self.to_bytes()[0]).hexdigest()

    @classmethod
    def from_bytes(cls, model: bytes, metadata: bytes) -> ModelArtifact:
        meta = parse_metadata(metadata)
        if not model:
            raise ArtifactError("the model file is empty")
        expected = meta.pop("model_sha256", None)  # a property of the file, not of the model: not kept
        if expected is not None and hashlib.sha256(model).hexdigest() != expected:
            raise ArtifactError(
                "the model file does not match the checksum in its metadata (corrupt or truncated, or the"
                " metadata of another model)"
            )
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(model))
        except (xgb.core.XGBoostError, ValueError, TypeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ArtifactError(
                f"the model file is not a readable XGBoost model (corrupt or truncated?): {first_line[:200]}"
            ) from error
        n_features = booster.num_features()
        if n_features != len(meta["features"]):
            raise ArtifactError(
                f"the model file expects {n_features} features but its metadata lists {len(meta['features'])}"
                " (model and metadata of different models?)"
            )
        if int(meta["n_rounds"]) != booster.num_boosted_rounds():
            raise ArtifactError(
                f"the model file has {booster.num_boosted_rounds()} boosting rounds but its metadata says"
                f" {meta['n_rounds']} (model and metadata of different models?)"
            )
        return cls(booster, meta)

    def save(self, directory: str | Path) -> Path:
        """Write `model.ubj` and `metadata.json` into `directory` (created)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        model, meta = self.to_bytes()
        (path / MODEL_FILE).write_bytes(model)
        (path / METADATA_FILE).write_bytes(meta)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ModelArtifact:
        path = Path(directory)
        try:
            model, meta = (path / MODEL_FILE).read_bytes(), (path / METADATA_FILE).read_bytes()
        except FileNotFoundError as error:
            raise ArtifactError(f"{path}: no {Path(error.filename).name}") from error
        return cls.from_bytes(model, meta)


def parse_metadata(metadata: bytes) -> dict[str, Any]:
    """Metadata JSON -> dict, checked; `ArtifactError` naming what is wrong."""
    try:
        meta = json.loads(metadata)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"the model metadata is not valid JSON ({error})") from error
    if not isinstance(meta, dict):
        raise ArtifactError("the model metadata is not a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise ArtifactError(f"the model metadata lacks {', '.join(missing)}")
    if meta["format_version"] != FORMAT_VERSION:
        raise ArtifactError(
            f"model format_version {meta['format_version']!r} is not supported (this library reads"
            f" {FORMAT_VERSION})"
        )
    feature_set = meta["feature_set"]
    if feature_set not in FEATURE_SETS:
        raise ArtifactError(f"the model's feature set {feature_set!r} is unknown to this library")
    version = meta.get("feature_set_version", 1)
    if version != FEATURE_SET_VERSIONS[feature_set] or list(meta["features"]) != list(
        FEATURE_SETS[feature_set]
    ):
        raise ArtifactError(
            f"the model was trained on version {version} of feature set {feature_set!r}, whose columns differ"
            f" from this library's version {FEATURE_SET_VERSIONS[feature_set]}: retrain it"
        )
    return meta


def center_predictions(rows: pd.DataFrame, predictions: np.ndarray) -> np.ndarray:
    """Predictions minus the index-weighted mean of the predictions at the same (date_id, second)."""
    if len(predictions) == 0:
        return predictions
    keys = rows["date_id"].to_numpy(dtype=np.int64) * 1000 + rows["seconds_in_bucket"].to_numpy(
        dtype=np.int64
    )
    codes, _ = pd.factorize(keys)
    return _centred(rows["stock_id"].to_numpy(dtype=np.int64), predictions, codes)


def center_snapshot(stocks: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """The predictions of one snapshot (one second, the given stocks) minus their index-weighted mean: the same
    numbers `center_predictions` gives those rows when the day holds the same stocks at that second."""
    if len(predictions) == 0:
        return predictions
    return _centred(
        np.asarray(stocks, dtype=np.int64), predictions, np.zeros(len(predictions), dtype=np.int64)
    )


def _centred(stocks: np.ndarray, predictions: np.ndarray, codes: np.ndarray) -> np.ndarray:
    # a non-finite prediction (a broken model) stays as it is and takes no part in its second's mean, so it
    # cannot turn every other prediction of that second into NaN
    finite = np.isfinite(predictions)
    weights = _index_weights(int(stocks.max()) + 1)[stocks] * finite
    total = np.bincount(codes, weights=weights * np.where(finite, predictions, 0.0))
    weight = np.bincount(codes, weights=weights)
    mean = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    return np.asarray(predictions - mean[codes], dtype=np.float64)


__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "MODEL_FILE",
    "ArtifactError",
    "ModelArtifact",
    "center_predictions",
    "center_snapshot",
    "library_versions",
    "parse_metadata",
]
