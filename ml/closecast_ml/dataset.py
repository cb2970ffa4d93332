"""Read a market dataset directory written by `closecast generate` (Parquet or CSV) into a Kaggle frame.

Layout of a generated directory:

    DIR/manifest.json    {"kind": "closecast-synthetic-market", "version": 1, "seed", "days", "stocks",
                          "first_date_id", "rows", "format", "files": {"train", "oracle"}, "params"}
    DIR/train.parquet    the Kaggle columns in Kaggle order, sorted by (date_id, seconds_in_bucket, stock_id),
                         one row group per date_id (zstd)            -- or DIR/train.csv (Kaggle's CSV layout)
    DIR/oracle.parquet   date_id, seconds_in_bucket, stock_id, oracle, in the same row order
                                                                     -- or DIR/oracle.csv (row_id,oracle)

The frames returned have the dtypes of `closecast_ml.kaggle.frame_dtypes()`, plus a float64 `oracle`
column when asked for. A path to Kaggle CSV files (or a directory without a manifest holding train.csv, or
test.csv and revealed_targets.csv) is read with the Kaggle loader instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_ml.kaggle import frame_dtypes, load_kaggle

MANIFEST_NAME = "manifest.json"
TRAIN_NAME = "train"
ORACLE_NAME = "oracle"
DATASET_VERSION = 1
KAGGLE_FILE_NAMES = ("train.csv", "test.csv", "revealed_targets.csv")


class DatasetError(ValueError):
    """A directory that is not a readable market dataset."""


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DatasetError(f"{directory}: no {MANIFEST_NAME} (not a generated market directory)") from error
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from error
    if manifest.get("kind") != "closecast-synthetic-market" or manifest.get("version") != DATASET_VERSION:
        raise DatasetError(
            f"{path}: unknown dataset kind/version {manifest.get('kind')}/{manifest.get('version')}"
        )
    return manifest


def is_generated(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def kaggle_files(path: str | Path) -> list[Path]:
    """The Kaggle CSV files in a directory (train.csv, or test.csv [+ revealed_targets.csv])."""
    directory = Path(path)
    found = [directory / name for name in KAGGLE_FILE_NAMES if (directory / name).is_file()]
    if (directory / "train.csv") in found:
        return [directory / "train.csv"]
    if not found:
        raise DatasetError(f"{directory}: neither a generated market ({MANIFEST_NAME}) nor Kaggle CSV files")
    return found


def _date_filter(date_range: tuple[int, int] | None) -> list[tuple[str, str, int]] | None:
    if date_range is None:
        return None
    return [("date_id", ">=", int(date_range[0])), ("date_id", "<=", int(date_range[1]))]


def _read_generated(directory: Path, date_range: tuple[int, int] | None, with_oracle: bool) -> pd.DataFrame:
    manifest = read_manifest(directory)
    train = directory / manifest["files"]["train"]
    oracle_file = directory / manifest["files"]["oracle"]
    if manifest["format"] == "parquet":
        frame = pq.read_table(train, filters=_date_filter(date_range)).to_pandas()
        frame = frame.astype(frame_dtypes())
        if with_oracle:
            oracle = pq.read_table(oracle_file, filters=_date_filter(date_range)).to_pandas()
            keys = ["date_id", "seconds_in_bucket", "stock_id"]
            aligned = len(oracle) == len(frame) and all(
                np.array_equal(oracle[k].to_numpy(), frame[k].to_numpy()) for k in keys
            )
            if aligned:
                frame["oracle"] = oracle["oracle"].to_numpy(dtype=np.float64)
            else:
                frame = frame.merge(oracle, on=keys, how="left")
        return frame
    frame = load_kaggle(train, date_range=date_range).frame
    if with_oracle:
        oracle = pd.read_csv(oracle_file, dtype={"row_id": "str", "oracle": "float64"})
        frame = frame.merge(oracle, on="row_id", how="left")
    return frame


def read_dataset(
    path: str | Path | Sequence[str | Path],
    *,
    date_range: tuple[int, int] | None = None,
    with_oracle: bool = True,
) -> pd.DataFrame:
    """A generated directory (Parquet or CSV), or Kaggle CSV files / a directory of them, as one frame.

    Columns: `KAGGLE_COLUMNS` (+ `oracle` for generated data when `with_oracle`), sorted by
    (date_id, seconds_in_bucket, stock_id). `date_range` is inclusive.
    """
    if isinstance(path, str | Path) and is_generated(path):
        return _read_generated(Path(path), date_range, with_oracle)
    if isinstance(path, str | Path):
        files = kaggle_files(path) if Path(path).is_dir() else [Path(path)]
    else:
        files = [Path(p) for p in path]
    return load_kaggle(files, date_range=date_range).frame


def iter_days(
    path: str | Path | Sequence[str | Path],
    *,
    date_range: tuple[int, int] | None = None,
    with_oracle: bool = False,
    block_days: int = 16,
) -> Iterator[pd.DataFrame]:
    """The dataset one date_id at a time, in date order (a generated Parquet dataset is read in blocks of
    `block_days`, so memory stays bounded; CSV files are loaded once)."""
    if isinstance(path, str | Path) and is_generated(path):
        manifest = read_manifest(path)
        first = int(manifest.get("first_date_id", 0))
        last = first + int(manifest["days"]) - 1
        if date_range is not None:
            first, last = max(first, int(date_range[0])), min(last, int(date_range[1]))
        if manifest["format"] == "parquet":
            for start in range(first, last + 1, block_days):
                block = _read_generated(Path(path), (start, min(last, start + block_days - 1)), with_oracle)
                yield from split_days(block)
            return
        yield from split_days(_read_generated(Path(path), (first, last), with_oracle))
        return
    yield from split_days(read_dataset(path, date_range=date_range, with_oracle=with_oracle))


def date_span(sources: Sequence[str | Path]) -> tuple[int, int] | None:
    """(first, last) date_id of a dataset, as `closecast replay` takes it (one generated directory, or Kaggle
    CSV files / directories of them); None if it has no row. For CSV files this reads them in full."""
    if len(sources) == 1 and is_generated(sources[0]):
        manifest = read_manifest(sources[0])
        first = int(manifest.get("first_date_id", 0))
        return (first, first + int(manifest["days"]) - 1) if int(manifest["days"]) > 0 else None
    files: list[Path] = []
    for source in sources:
        files.extend(kaggle_files(source) if Path(source).is_dir() else [Path(source)])
    report = load_kaggle(files, date_range=_NO_DATE).report
    if report.date_min is None or report.date_max is None:
        return None
    return report.date_min, report.date_max


_NO_DATE = (1, 0)  # a date range no row is in: files are read (and checked) but no row is kept


def read_days(
    path: str | Path | Sequence[str | Path],
    date_ids: Sequence[int] | None = None,
    *,
    with_oracle: bool = False,
) -> pd.DataFrame:
    """The rows of the given date_ids (all when None) of a generated directory or Kaggle files, as one frame
    sorted by (date_id, seconds_in_bucket, stock_id). Only the span of `date_ids` is read."""
    if date_ids is None:
        return read_dataset(path, with_oracle=with_oracle)
    wanted = sorted({int(d) for d in date_ids})
    if not wanted:
        return read_dataset(path, date_range=_NO_DATE, with_oracle=with_oracle)
    frame = read_dataset(path, date_range=(wanted[0], wanted[-1]), with_oracle=with_oracle)
    if len(wanted) == wanted[-1] - wanted[0] + 1:
        return frame
    return frame[frame["date_id"].isin(wanted)].reset_index(drop=True)


def split_days(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Consecutive runs of one date_id (the frame sorted by date) as separate frames."""
    if frame.empty:
        return
    dates = frame["date_id"].to_numpy()
    bounds = np.flatnonzero(np.diff(dates)) + 1
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(frame)], strict=True):
        yield frame.iloc[start:stop].reset_index(drop=True)


__all__ = [
    "DATASET_VERSION",
    "KAGGLE_COLUMNS",
    "MANIFEST_NAME",
    "ORACLE_NAME",
    "TRAIN_NAME",
    "DatasetError",
    "date_span",
    "is_generated",
    "iter_days",
    "kaggle_files",
    "read_dataset",
    "read_days",
    "read_manifest",
    "split_days",
]
