"""Kaggle targets from their definition, and the synthetic index weights that ship with the library.

    target[i, t] = (wap[i, t+60] / wap[i, t] - index[t+60] / index[t]) * 10_000      (basis points)
    index[t]     = sum_j w_j * wap[j, t] / sum_j w_j                 over the stocks present at t

"Present" means the stock has a row with a non-null WAP at that second of that day. Rows whose t+60 lies
past the last snapshot of the day (or whose WAP at t+60 is missing) get NaN: the data does not carry it.
Everything is vectorised: rows are scattered into a (days, 55, stocks) cube, computed there, gathered back.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from closecast.market.schema import SECONDS_STEP, SNAPSHOTS_PER_DAY

HORIZON_SECONDS = 60
HORIZON_STEPS = HORIZON_SECONDS // SECONDS_STEP
BPS = 10_000.0


@lru_cache(maxsize=1)
def _weights_array() -> np.ndarray:
    with resources.files("closecast_ml").joinpath("index_weights.csv").open("r") as handle:
        table = pd.read_csv(handle, dtype={"stock_id": "int64", "weight": "float64"})
    weights = np.full(int(table["stock_id"].max()) + 1, np.nan)
    weights[table["stock_id"].to_numpy()] = table["weight"].to_numpy()
    if np.isnan(weights).any():
        raise ValueError("index_weights.csv: stock ids are not contiguous from 0")
    weights.setflags(write=False)
    return weights


def load_index_weights() -> pd.Series:
    """The competition's index weight of each stock_id (0..199), float64, summing to 1.0."""
    weights = _weights_array()
    return pd.Series(weights.copy(), index=pd.RangeIndex(len(weights), name="stock_id"), name="weight")


def _weights_vector(weights: pd.Series | np.ndarray | None, n_stocks: int) -> np.ndarray:
    if weights is None:
        vector = _weights_array()
    elif isinstance(weights, pd.Series):
        vector = np.full(int(weights.index.max()) + 1, np.nan)
        vector[weights.index.to_numpy(dtype=np.int64)] = weights.to_numpy(dtype=np.float64)
    else:
        vector = np.asarray(weights, dtype=np.float64)
    if len(vector) < n_stocks or np.isnan(vector[:n_stocks]).any():
        raise ValueError(
            f"no index weight for some stock_id < {n_stocks} (weights cover {len(vector)} stocks)"
        )
    return vector[:n_stocks]


def index_levels(wap: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """index[..., t] over the stocks present (non-NaN WAP) for a (..., T, S) cube of WAPs -> (..., T)."""
    present = ~np.isnan(wap)
    weighted = np.where(present, wap, 0.0) @ weights
    total = present.astype(np.float64) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / total, np.nan)


def targets_from_cube(wap: np.ndarray, weights: np.ndarray, horizon: int = HORIZON_STEPS) -> np.ndarray:
    """Targets (bps) for a (..., T, S) cube of WAPs (NaN = absent): result (..., T - horizon, S).

    The generator calls this with T = 55 + 6 (it simulates past the last snapshot) to get every target.
    """
    index = index_levels(wap, weights)
    later, now = wap[..., horizon:, :], wap[..., :-horizon, :]
    index_ratio = index[..., horizon:] / index[..., :-horizon]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (later / now - index_ratio[..., None]) * BPS


def compute_targets(frame: pd.DataFrame, weights: pd.Series | np.ndarray | None = None) -> pd.Series:
    """Each row's target from the WAPs of its day, aligned on `frame.index` (float64, NaN where unknown).

    `frame` needs `date_id`, `seconds_in_bucket`, `stock_id` and `wap`; rows may come in any order.
    `weights`: per stock_id (Series indexed by stock_id, or an array); default: the shipped index weights.
    (date_id, seconds_in_bucket, stock_id) must be unique: `ValueError` otherwise (which WAP would count?).
    """
    if frame.empty:
        return pd.Series(np.array([], dtype=np.float64), index=frame.index, name="target")
    date_codes, _ = pd.factorize(frame["date_id"].to_numpy(), sort=True)
    seconds = frame["seconds_in_bucket"].to_numpy(dtype=np.int64)
    steps = seconds // SECONDS_STEP
    stocks = frame["stock_id"].to_numpy(dtype=np.int64)
    if (seconds % SECONDS_STEP).any() or steps.min() < 0 or steps.max() >= SNAPSHOTS_PER_DAY:
        raise ValueError("seconds_in_bucket must be multiples of 10 in 0..540")
    if stocks.min() < 0:
        raise ValueError("stock_id must be >= 0")
    n_stocks = int(stocks.max()) + 1
    vector = _weights_vector(weights, n_stocks)
    cube = np.full((int(date_codes.max()) + 1, SNAPSHOTS_PER_DAY, n_stocks), np.nan)
    _require_unique(frame, np.ravel_multi_index((date_codes, steps, stocks), cube.shape), cube.size)
    cube[date_codes, steps, stocks] = frame["wap"].to_numpy(dtype=np.float64)
    cube_targets = np.full_like(cube, np.nan)
    cube_targets[:, : SNAPSHOTS_PER_DAY - HORIZON_STEPS, :] = targets_from_cube(cube, vector)
    return pd.Series(cube_targets[date_codes, steps, stocks], index=frame.index, name="target")


def _require_unique(frame: pd.DataFrame, cells: np.ndarray, size: int) -> None:
    """`ValueError` naming the first (date_id, seconds_in_bucket, stock_id) that more than one row has."""
    counts = np.bincount(cells, minlength=size)
    if counts.max() <= 1:
        return
    repeated = np.flatnonzero(counts[cells] > 1)
    first = frame.iloc[int(repeated[0])]
    raise ValueError(
        f"(date_id, seconds_in_bucket, stock_id) is not unique: {len(repeated)} rows share a key with another"
        f", e.g. date_id {int(first['date_id'])}, seconds_in_bucket {int(first['seconds_in_bucket'])}"
        f", stock_id {int(first['stock_id'])}"
    )
