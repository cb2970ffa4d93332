"""Market frames: the Kaggle columns with fixed dtypes, sorted by (date_id, seconds_in_bucket, stock_id).

* ids: stock_id/date_id/seconds_in_bucket int16, imbalance_buy_sell_flag int8, time_id int32;
* prices and sizes float64 (or float32 when asked); `target` always float64; row_id a string.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from closecast.market.schema import KAGGLE_COLUMNS, SECONDS_STEP, SNAPSHOTS_PER_DAY

FloatDtype = Literal["float64", "float32"]
KEYS = ["date_id", "seconds_in_bucket", "stock_id"]
INT_COLUMNS: dict[str, str] = {
    "stock_id": "int16",
    "date_id": "int16",
    "seconds_in_bucket": "int16",
    "imbalance_buy_sell_flag": "int8",
    "time_id": "int32",
}


def frame_dtypes(float_dtype: FloatDtype = "float64") -> dict[str, str]:
    """The dtype of each Kaggle column in the frames the loaders return."""
    dtypes: dict[str, str] = {}
    for column in KAGGLE_COLUMNS:
        if column in INT_COLUMNS:
            dtypes[column] = INT_COLUMNS[column]
        elif column == "row_id":
            dtypes[column] = "str"
        elif column == "target":
            dtypes[column] = "float64"
        else:
            dtypes[column] = float_dtype
    return dtypes


def normalise(frame: pd.DataFrame, float_dtype: FloatDtype = "float64") -> pd.DataFrame:
    """`frame` with the Kaggle columns in Kaggle order and dtypes, sorted by (date_id, seconds_in_bucket,
    stock_id). Missing `target` becomes NaN; missing `time_id`/`row_id` are derived from the keys; other columns
    (e.g. `oracle`) are kept after the Kaggle ones. A missing key or feature column raises `ValueError`."""
    missing = [
        c for c in KAGGLE_COLUMNS if c not in frame.columns and c not in ("target", "time_id", "row_id")
    ]
    if missing:
        raise ValueError(f"rows lack the Kaggle column(s) {', '.join(missing)}")
    out = frame.copy()
    date = out["date_id"].to_numpy(dtype=np.int64)
    seconds = out["seconds_in_bucket"].to_numpy(dtype=np.int64)
    if "target" not in out:
        out["target"] = np.nan
    if "time_id" not in out:
        out["time_id"] = date * SNAPSHOTS_PER_DAY + seconds // SECONDS_STEP
    if "row_id" not in out:
        stock = out["stock_id"].to_numpy(dtype=np.int64)
        out["row_id"] = [f"{d}_{s}_{k}" for d, s, k in zip(date, seconds, stock, strict=True)]
    extra = [c for c in out.columns if c not in KAGGLE_COLUMNS]
    out = out[[*KAGGLE_COLUMNS, *extra]].astype(frame_dtypes(float_dtype))
    return out.sort_values(KEYS, kind="stable", ignore_index=True)


__all__ = ["INT_COLUMNS", "KAGGLE_COLUMNS", "KEYS", "FloatDtype", "frame_dtypes", "normalise"]
