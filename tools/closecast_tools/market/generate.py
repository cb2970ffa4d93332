"""Writing the synthetic market: Kaggle frames from simulated blocks of days, and the dataset on disk.

The simulator itself is `simulate.py` (dynamics and the exact oracle), its options `params.py`, what drifts
across days `regimes.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from closecast.market.schema import KAGGLE_COLUMNS, N_STOCKS, SECONDS_STEP, SNAPSHOTS_PER_DAY
from closecast_ml.dataset import DATASET_VERSION, MANIFEST_NAME, ORACLE_NAME, TRAIN_NAME
from closecast_ml.kaggle import expected_row_ids, frame_dtypes
from closecast_tools.market.params import MarketParams
from closecast_tools.market.simulate import simulate_block

__all__ = ["MarketParams", "generate_frame", "iter_blocks", "simulate_frame", "write_dataset"]
Format = Literal["parquet", "csv"]


def simulate_frame(
    seed: int, date_ids: np.ndarray, n_stocks: int = N_STOCKS, params: MarketParams | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulate the given days; returns (Kaggle frame, oracle aligned with the frame's rows)."""
    block = simulate_block(seed, np.asarray(date_ids), n_stocks, params)
    keep = np.broadcast_to(block.present[:, None, :], (len(date_ids), SNAPSHOTS_PER_DAY, n_stocks))
    days = np.broadcast_to(np.asarray(date_ids, dtype=np.int64)[:, None, None], keep.shape)
    seconds = np.broadcast_to((np.arange(SNAPSHOTS_PER_DAY) * SECONDS_STEP)[None, :, None], keep.shape)
    stock_ids = np.broadcast_to(np.arange(n_stocks)[None, None, :], keep.shape)

    def rows(cube: np.ndarray) -> np.ndarray:
        return cube[:, :SNAPSHOTS_PER_DAY, :][keep]

    date_col, second_col, stock_col = days[keep], seconds[keep], stock_ids[keep]
    dtypes = frame_dtypes()
    columns: dict[str, np.ndarray] = {
        "stock_id": stock_col,
        "date_id": date_col,
        "seconds_in_bucket": second_col,
        "imbalance_size": rows(block.imbalance),
        "imbalance_buy_sell_flag": rows(block.flag),
        "reference_price": rows(block.reference),
        "matched_size": rows(block.matched),
        "far_price": rows(block.far),
        "near_price": rows(block.near),
        "bid_price": rows(block.bid),
        "bid_size": rows(block.bid_size),
        "ask_price": rows(block.ask),
        "ask_size": rows(block.ask_size),
        "wap": rows(block.wap),
        "target": block.target[keep],
        "time_id": date_col * SNAPSHOTS_PER_DAY + second_col // SECONDS_STEP,
    }
    frame = pd.DataFrame({name: values.astype(dtypes[name]) for name, values in columns.items()})
    frame["row_id"] = pd.Series(expected_row_ids(date_col, second_col, stock_col).to_pandas(), dtype="str")
    return frame[list(KAGGLE_COLUMNS)], block.oracle[keep]


def iter_blocks(
    days: int, seed: int, n_stocks: int = N_STOCKS, block_days: int = 32, params: MarketParams | None = None
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """(frame, oracle) for date_id 0..days-1, `block_days` at a time (bounded memory)."""
    for start in range(0, days, block_days):
        yield simulate_frame(seed, np.arange(start, min(days, start + block_days)), n_stocks, params)


def generate_frame(
    days: int, seed: int, n_stocks: int = N_STOCKS, params: MarketParams | None = None
) -> pd.DataFrame:
    """The whole market in memory: the Kaggle columns plus `oracle` (for tests and small experiments)."""
    parts = []
    for frame, oracle in iter_blocks(days, seed, n_stocks, params=params):
        parts.append(frame.assign(oracle=oracle))
    return pd.concat(parts, ignore_index=True)


def _csv_writer(path: Path, schema: pa.Schema, handles: list[BinaryIO]) -> pacsv.CSVWriter:
    """Kaggle's CSV layout: a bare header line, no quotes, empty cells for nulls."""
    handle = open(path, "wb")  # noqa: SIM115 - closed by write_dataset after the writer
    handles.append(handle)
    handle.write((",".join(schema.names) + "\n").encode())
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    return pacsv.CSVWriter(handle, schema, write_options=options)


@dataclass
class GenerateSummary:
    out: Path
    format: str
    days: int
    stocks: int
    seed: int
    rows: int
    seconds: float


def write_dataset(
    out: str | Path,
    *,
    days: int,
    seed: int,
    n_stocks: int = N_STOCKS,
    fmt: Format = "parquet",
    params: MarketParams | None = None,
) -> GenerateSummary:
    """Write a generated market to `out`: train.{parquet,csv} + oracle.{parquet,csv} + manifest.json."""
    if not 1 <= n_stocks <= N_STOCKS:
        raise ValueError(f"stocks must be in 1..{N_STOCKS} (the index has weights for {N_STOCKS})")
    if days < 1:
        raise ValueError("days must be >= 1")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_path = out / f"{TRAIN_NAME}.{fmt}"
    oracle_path = out / f"{ORACLE_NAME}.{fmt}"
    rows = 0
    handles: list[BinaryIO] = []
    train_writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    oracle_writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    try:
        for frame, oracle in iter_blocks(days, seed, n_stocks, params=params):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if fmt == "parquet":
                oracle_table = pa.table(
                    {
                        "date_id": frame["date_id"].to_numpy(),
                        "seconds_in_bucket": frame["seconds_in_bucket"].to_numpy(),
                        "stock_id": frame["stock_id"].to_numpy(),
                        "oracle": oracle,
                    }
                )
            else:
                oracle_table = pa.table({"row_id": table.column("row_id"), "oracle": oracle})
            if train_writer is None or oracle_writer is None:
                if fmt == "parquet":
                    train_writer = pq.ParquetWriter(train_path, table.schema, compression="zstd")
                    oracle_writer = pq.ParquetWriter(oracle_path, oracle_table.schema, compression="zstd")
                else:
                    train_writer = _csv_writer(train_path, table.schema, handles)
                    oracle_writer = _csv_writer(oracle_path, oracle_table.schema, handles)
            if fmt == "parquet":
                # one row group per day, so that readers can pick dates cheaply
                for day in np.unique(frame["date_id"].to_numpy()):
                    selection = np.flatnonzero(frame["date_id"].to_numpy() == day)
                    first, last = int(selection[0]), int(selection[-1]) + 1
                    train_writer.write_table(table.slice(first, last - first))
                    oracle_writer.write_table(oracle_table.slice(first, last - first))
            else:
                train_writer.write_table(table)
                oracle_writer.write_table(oracle_table)
            rows += len(frame)
    finally:
        for writer in (train_writer, oracle_writer):
            if writer is not None:
                writer.close()
        for handle in handles:
            handle.close()
    manifest = {
        "kind": "closecast-synthetic-market",
        "version": DATASET_VERSION,
        "seed": seed,
        "days": days,
        "first_date_id": 0,
        "stocks": n_stocks,
        "rows": rows,
        "format": fmt,
        "files": {"train": train_path.name, "oracle": oracle_path.name},
        "params": (params or MarketParams()).as_dict(),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return GenerateSummary(out, fmt, days, n_stocks, seed, rows, time.perf_counter() - started)
