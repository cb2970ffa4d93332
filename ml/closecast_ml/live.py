"""Streaming predictions: every snapshot that reaches the stream is predicted with the champion model, its
features computed from the day's earlier snapshots exactly as the batch path computes them on the whole day.

Where the earlier snapshots come from: the consumer sees the stream in order (per shard), so it keeps each
recent day's snapshots warm in memory; on a cold start (a new sandbox, or a day first seen part-way through)
and whenever earlier snapshots are missing, it reads them once from the database (a paged Data API read of
the day up to that second). A snapshot whose earlier rows are still missing is predicted with what is known
and flagged `partial` (never dropped). Predictions are upserted on (row, model), so a redelivered or replayed
snapshot changes nothing.

The champion: looked up once per batch (one small query), the model loaded from S3 when it changes and kept
warm. A champion whose artifact cannot be loaded is not used: the last good model keeps predicting (or, on a
cold start, the newest earlier champion that loads), and the reason is logged.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from closecast.db.data_api import DataApi
from closecast.ingest import StreamRecord, parse
from closecast.market.schema import KAGGLE_COLUMNS, SECONDS_STEP, SNAPSHOTS_PER_DAY, Snapshot
from closecast.resources.champions import sql as champions
from closecast.resources.models import sql as models
from closecast.resources.predictions import sql as predictions
from closecast_ml.features import SnapshotFeaturizer
from closecast_ml.model import ArtifactError, ModelArtifact, center_snapshot

logger = logging.getLogger(__name__)

INPUT_COLUMNS = [c for c in KAGGLE_COLUMNS if c not in ("target", "time_id", "row_id")]
_INPUT_VALUES = operator.attrgetter(*INPUT_COLUMNS)
WARM_DAYS = 3  # days of snapshots kept in memory
KINESIS_PUT_LIMIT = 500

_EARLIER_ROWS_SQL = (
    f"SELECT {', '.join(INPUT_COLUMNS)} FROM stock_data WHERE date_id = :date_id "
    "AND seconds_in_bucket = ANY(CAST(:seconds AS integer[])) ORDER BY seconds_in_bucket, stock_id"
)


class NoUsableModel(Exception):
    """Neither the champion nor any earlier champion could be loaded."""


# ------------------------------------------------------------------ the champion, kept warm


@dataclass
class Champion:
    model_id: int
    artifact: ModelArtifact
    note: str = ""  # why this is not the registry's champion, when it is not


ArtifactLoader = Callable[[dict[str, Any]], ModelArtifact]


def s3_loader(s3: Any) -> ArtifactLoader:
    """Loads a registered model's two files from S3 (raises ArtifactError on unusable files)."""

    def read(uri: str) -> bytes:
        if not uri.startswith("s3://"):
            raise ArtifactError(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[5:].partition("/")
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def load(record: dict[str, Any]) -> ModelArtifact:
        if not record.get("metadata_uri"):
            raise ArtifactError(f"model {record['id']} has no metadata file")
        return ModelArtifact.from_bytes(read(str(record["artifact_uri"])), read(str(record["metadata_uri"])))

    return load


class ChampionCache:
    """The champion of `name`, reloaded only when the registry names another model."""

    def __init__(self, api: DataApi, name: str, loader: ArtifactLoader) -> None:
        self.api, self.name, self.loader = api, name, loader
        self.current: Champion | None = None
        self._refused: dict[int, str] = {}  # model id -> why its artifact was unusable (not retried)

    def named(self) -> bool:
        """True when a model is in use or the registry names a champion (then one small query); False before
        the first champion is named, when nothing can predict."""
        return self.current is not None or champions.champion(self.api, self.name) is not None

    def get(self) -> Champion | None:
        row = champions.champion(self.api, self.name)
        if row is None:
            return self.current  # no champion named (yet): keep whatever was in use, if anything
        wanted = int(row["model_id"])
        if self.current is not None and self.current.model_id == wanted:
            return self.current
        if wanted not in self._refused:
            loaded = self._load(wanted)
            if loaded is not None:
                self.current = Champion(wanted, loaded)
                logger.info("champion loaded", extra={"model_id": wanted, "name": self.name})
                return self.current
        reason = self._refused.get(wanted, "")
        if self.current is not None:
            self.current.note = (
                f"champion {wanted} unusable ({reason}); still predicting with {self.current.model_id}"
            )
            return self.current
        for model_id in champions.previous_champions(self.api, self.name):
            if model_id == wanted or model_id in self._refused:
                continue
            loaded = self._load(model_id)
            if loaded is not None:
                note = f"champion {wanted} unusable ({reason}); predicting with earlier champion {model_id}"
                self.current = Champion(model_id, loaded, note)
                logger.warning(note)
                return self.current
        raise NoUsableModel(
            f"champion {wanted} of {self.name!r} is unusable ({reason}) and no earlier one loads"
        )

    def _load(self, model_id: int) -> ModelArtifact | None:
        record = models.get_model(self.api, model_id)
        if record is None:
            self._refused[model_id] = "not in the registry"
            return None
        try:
            return self.loader(record)
        except ArtifactError as exc:
            self._refused[model_id] = str(exc)
            logger.error("champion artifact unusable", extra={"model_id": model_id, "reason": str(exc)})
            return None


# ------------------------------------------------------------------ the day's snapshots, kept warm


@dataclass
class DayState:
    """One day's snapshots as seen so far (raw rows per second), and a featurizer fed up to `fed_through`."""

    date_id: int
    snapshots: dict[int, pd.DataFrame] = field(default_factory=dict)
    checked_database: set[int] = field(default_factory=set)  # seconds already looked for in the database
    featurizer: SnapshotFeaturizer | None = None
    featurizer_model: int | None = None

    def missing_before(self, second: int) -> list[int]:
        return [s for s in range(0, second, SECONDS_STEP) if s not in self.snapshots]

    def stocks_seen(self, second: int, stocks: np.ndarray) -> np.ndarray:
        """For each stock: how many earlier snapshots of the day lack its row."""
        missing = np.zeros(len(stocks), dtype=np.int64)
        for s in range(0, second, SECONDS_STEP):
            frame = self.snapshots.get(s)
            if frame is None:
                missing += 1
            else:
                missing += ~np.isin(stocks, frame["stock_id"].to_numpy())
        return missing


class LivePredictor:
    """Turns stream records into predictions (rows for the `prediction` table, one message per snapshot)."""

    def __init__(self, api: DataApi, champion: ChampionCache, *, warm_days: int = WARM_DAYS) -> None:
        self.api = api
        self.champion = champion
        self.warm_days = warm_days
        self.days: OrderedDict[int, DayState] = OrderedDict()
        self.timings: dict[str, float] = {"features": 0.0, "predict": 0.0, "database_reads": 0.0}
        self.snapshots_predicted = 0

    # --- records -> snapshots
    @staticmethod
    def snapshots_of(records: Iterable[StreamRecord]) -> list[pd.DataFrame]:
        """The valid rows of the records, as one frame per (date_id, second) in stream order (a later row of
        the same key wins), of the model's input columns, in stock order. Bad rows and revealed targets are the
        ingest's business: skipped here."""
        order: list[tuple[int, int]] = []
        rows: dict[tuple[int, int], dict[int, Snapshot]] = {}
        for record in records:
            try:
                parsed, _ = parse(record)
            except Exception:  # the ingest quarantines it
                logger.debug("unreadable record skipped", extra={"sequence": record.sequence_number})
                continue
            for snapshot in parsed.rows:
                key = (snapshot.date_id, snapshot.seconds_in_bucket)
                if key not in rows:
                    rows[key] = {}
                    order.append(key)
                rows[key][snapshot.stock_id] = snapshot
        frames = []
        for key in order:
            by_stock = rows[key]
            values = map(_INPUT_VALUES, [by_stock[stock] for stock in sorted(by_stock)])
            # column by column: no dict per row, and each column's type inferred once from its list
            columns = zip(INPUT_COLUMNS, map(list, zip(*values, strict=True)), strict=True)
            frames.append(pd.DataFrame(dict(columns), columns=INPUT_COLUMNS))
        return frames

    # --- state
    def _day(self, date_id: int) -> DayState:
        state = self.days.get(date_id)
        if state is None:
            state = self.days[date_id] = DayState(date_id)
            while len(self.days) > self.warm_days:
                self.days.popitem(last=False)
        self.days.move_to_end(date_id)
        return state

    def _fill_from_database(self, state: DayState, second: int) -> None:
        """Earlier snapshots of the day this process has not seen: read once from the database."""
        wanted = [s for s in state.missing_before(second) if s not in state.checked_database]
        if not wanted:
            return
        started = time.perf_counter()
        records = self.api.query(
            _EARLIER_ROWS_SQL,
            {"date_id": state.date_id, "seconds": "{" + ",".join(map(str, wanted)) + "}"},
            page_size=5000,
        )
        self.timings["database_reads"] += time.perf_counter() - started
        state.checked_database.update(wanted)
        if not records:
            return
        frame = pd.DataFrame.from_records(records, columns=INPUT_COLUMNS)
        for s, part in frame.groupby("seconds_in_bucket", sort=True):
            state.snapshots[int(str(s))] = part.reset_index(drop=True)
        state.featurizer = None  # history changed below what it was fed: rebuild on next use

    def _features(self, state: DayState, model: Champion, frame: pd.DataFrame, second: int) -> np.ndarray:
        artifact = model.artifact
        if state.featurizer is None or state.featurizer_model != model.model_id:
            state.featurizer = SnapshotFeaturizer(artifact.feature_set, artifact.stats)
            state.featurizer_model = model.model_id
            for s in sorted(state.snapshots):
                if s != second:
                    state.featurizer.add_matrix(state.snapshots[s])
        state.snapshots[second] = frame
        return state.featurizer.add_matrix(frame)

    # --- the batch
    def predict(self, frames: Sequence[pd.DataFrame]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(prediction rows, one output message per snapshot). Raises NoUsableModel without a model; returns
        nothing when no champion was ever named."""
        if not frames:
            return [], []
        model = self.champion.get()
        if model is None:
            logger.info("no champion yet: snapshots not predicted", extra={"snapshots": len(frames)})
            return [], []
        rows: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for frame in frames:
            date_id = int(frame["date_id"].to_numpy()[0])
            second = int(frame["seconds_in_bucket"].to_numpy()[0])
            state = self._day(date_id)
            if state.missing_before(second):
                self._fill_from_database(state, second)
            inputs = _with_earlier_rows(frame[INPUT_COLUMNS], state.snapshots.get(second))
            stocks = inputs["stock_id"].to_numpy(dtype=np.int64)
            missing = state.stocks_seen(second, stocks)
            started = time.perf_counter()
            matrix = self._features(state, model, inputs, second)
            self.timings["features"] += time.perf_counter() - started
            started = time.perf_counter()
            values = center_snapshot(stocks, model.artifact.predict_matrix(matrix))
            self.timings["predict"] += time.perf_counter() - started
            self.snapshots_predicted += 1
            snapshot_rows = [
                {
                    "date_id": date_id,
                    "seconds_in_bucket": second,
                    "stock_id": int(stock),
                    "model_id": model.model_id,
                    "row_id": f"{date_id}_{second}_{int(stock)}",
                    "value": float(value),
                    "partial": bool(gap > 0),
                    "missing_before": int(gap),
                }
                for stock, value, gap in zip(stocks, values, missing, strict=True)
            ]
            rows.extend(snapshot_rows)
            messages.append(
                {
                    "model_id": model.model_id,
                    "date_id": date_id,
                    "seconds_in_bucket": second,
                    "time_id": date_id * SNAPSHOTS_PER_DAY + second // SECONDS_STEP,
                    "partial": any(r["partial"] for r in snapshot_rows),
                    "predictions": [
                        {"stock_id": r["stock_id"], "value": r["value"], "partial": r["partial"]}
                        for r in snapshot_rows
                    ],
                }
            )
        return rows, messages


def _with_earlier_rows(rows: pd.DataFrame, earlier: pd.DataFrame | None) -> pd.DataFrame:
    """A second's rows completed with the rows of other stocks already seen at that second (a snapshot split
    across batches, e.g. replayed one record per row): the cross-section features and the centring then use
    every stock of the second, as the whole-day batch does, and the second's rows are predicted (upserted)
    again together. Rows given now win over earlier ones of the same stock."""
    if earlier is None or earlier.empty:
        return rows
    others = earlier[~earlier["stock_id"].isin(rows["stock_id"])]
    if others.empty:
        return rows
    merged = pd.concat([others, rows], ignore_index=True)
    return merged.sort_values("stock_id", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ the handler's work


@dataclass
class BatchResult:
    snapshots: int = 0
    predictions: int = 0
    published: int = 0
    model_id: int | None = None
    note: str = ""
    failed: bool = False


def publish(kinesis: Any, stream_name: str, messages: Sequence[dict[str, Any]], attempts: int = 5) -> int:
    """Put one record per snapshot on the output stream (partition key: the day), retrying what the stream
    throttled. Returns how many were put; raises when some could not be put after `attempts`."""
    pending = [
        {"Data": json.dumps(m, allow_nan=False).encode(), "PartitionKey": str(m["date_id"])} for m in messages
    ]
    put = 0
    for attempt in range(attempts):
        retry: list[dict[str, Any]] = []
        for start in range(0, len(pending), KINESIS_PUT_LIMIT):
            chunk = pending[start : start + KINESIS_PUT_LIMIT]
            response = kinesis.put_records(StreamName=stream_name, Records=chunk)
            for entry, result in zip(chunk, response["Records"], strict=True):
                if result.get("ErrorCode"):
                    retry.append(entry)
                else:
                    put += 1
        if not retry:
            return put
        pending = retry
        time.sleep(min(1.0, 0.05 * 2**attempt))
    raise RuntimeError(f"{len(pending)} prediction messages could not be put on {stream_name}")


def handle_batch(
    predictor: LivePredictor,
    records: Sequence[StreamRecord],
    *,
    kinesis: Any | None = None,
    output_stream: str | None = None,
) -> BatchResult:
    """Predict the batch's snapshots, store the predictions, then publish them. Exceptions propagate (the
    handler reports the batch for redelivery: everything here is idempotent).

    Before any champion is named (a new deployment streams data before its first training) the records are
    not even read: validating a batch costs about what ingesting it does, for nothing to predict with."""
    if not predictor.champion.named():
        logger.info("no champion yet: snapshots not predicted", extra={"records": len(records)})
        return BatchResult(note="no champion yet")
    frames = predictor.snapshots_of(records)
    result = BatchResult(snapshots=len(frames))
    rows, messages = predictor.predict(frames)
    if rows:
        predictions.upsert(predictor.api, rows)
        result.predictions = len(rows)
        result.model_id = int(rows[0]["model_id"])
    if messages and kinesis is not None and output_stream:
        result.published = publish(kinesis, output_stream, messages)
    if predictor.champion.current is not None:
        result.note = predictor.champion.current.note
    return result
