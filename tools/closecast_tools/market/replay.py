"""Put a market dataset on a Kinesis stream in time order, snapshot by snapshot (`closecast replay`).

A snapshot is every row of one (date_id, seconds_in_bucket). Snapshots are sent one after the other; with a
speed, snapshot n leaves at start + n * 10 s / speed. Record shapes (the contract the ingest function parses):

* row:      one JSON object per record with the Kaggle columns (floats as numbers, nulls as null; `target`
            null when unknown), partition key `str(stock_id)`;
* envelope: `{"data": [row, ...], "commit": true}` with the rows of one snapshot (split in several records if
            one would pass 1 MiB), partition key `f"{date_id}_{seconds_in_bucket}"`;
* revealed targets (`reveal_targets`): after each day, `{"revealed_targets": [{"date_id", "seconds_in_bucket",
            "stock_id", "target"}, ...]}` (chunked under 1 MiB), partition key `f"targets_{date_id}"`; the
            rows themselves are then sent without the `target` key.

PutRecords calls carry at most 500 records and 5 MiB, and never more than one snapshot, so that a retried
record cannot overtake a later snapshot: each shard receives the snapshots in time order. Records that come
back with an ErrorCode are sent again with exponential backoff, a bounded number of times; if some still
fail, the replay stops and raises `ReplayError`, which says exactly how many rows (and revealed targets) were
not sent.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from closecast.market.schema import KAGGLE_COLUMNS, SECONDS_STEP
from closecast_ml.dataset import (
    is_generated,
    iter_days,
    kaggle_files,
    read_dataset,
    read_manifest,
    split_days,
)
from closecast_ml.kaggle import load_kaggle

Shape = Literal["row", "envelope"]
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
RETRYABLE_CALL_ERRORS = {
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
    "ThrottlingException",
}
FLOAT_COLUMNS = tuple(
    c
    for c in KAGGLE_COLUMNS
    if c not in {"stock_id", "date_id", "seconds_in_bucket", "imbalance_buy_sell_flag"}
)


@dataclass(frozen=True)
class Record:
    data: bytes
    partition_key: str
    rows: int = 0  # snapshot rows carried
    targets: int = 0  # revealed targets carried

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


@dataclass(frozen=True)
class ReplayOptions:
    shape: Shape = "row"
    speed: float | None = None  # None: as fast as possible; 1.0: real time; N: N times real time
    reveal_targets: bool = False
    max_attempts: int = 8  # PutRecords attempts per record before giving up
    backoff_base: float = 0.05  # seconds; doubled at each attempt
    backoff_max: float = 5.0
    progress: bool = True
    total_rows: int | None = None  # for the progress bar
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class ReplaySummary:
    rows: int = 0  # snapshot rows that landed
    records: int = 0  # records that landed
    batches: int = 0  # PutRecords calls
    retries: int = 0  # records sent again after coming back failed (or after a throttled call)
    targets: int = 0  # revealed targets that landed
    snapshots: int = 0
    days: int = 0
    rows_not_sent: int = 0
    targets_not_sent: int = 0
    # rows and targets of a PutRecords call cut short by Ctrl-C/SIGTERM: they may or may not have landed
    rows_in_doubt: int = 0
    targets_in_doubt: int = 0
    elapsed: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # ErrorCode -> how many times seen

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else math.inf

    def text(self) -> str:
        line = (
            f"replayed {self.rows} rows in {self.records} records ({self.batches} PutRecords batches, "
            f"{self.snapshots} snapshots, {self.days} days), {self.targets} revealed targets, "
            f"{self.retries} retries, {self.elapsed:.1f} s, {self.rows_per_second:,.0f} rows/s"
        )
        if self.errors:
            line += "; errors seen: " + ", ".join(f"{code} x{n}" for code, n in sorted(self.errors.items()))
        if self.rows_not_sent or self.targets_not_sent:
            line += f"; NOT SENT: {self.rows_not_sent} rows, {self.targets_not_sent} revealed targets"
        if self.rows_in_doubt or self.targets_in_doubt:
            line += (
                f"; IN DOUBT (a call was interrupted; they may have landed): {self.rows_in_doubt} rows, "
                f"{self.targets_in_doubt} revealed targets"
            )
        return line


class ReplayError(RuntimeError):
    """The replay stopped before the end; `summary` says what landed and what was not sent."""

    def __init__(self, reason: str, summary: ReplaySummary) -> None:
        self.reason = reason
        self.summary = summary
        doubt = (
            f", {summary.rows_in_doubt} rows and {summary.targets_in_doubt} targets in doubt"
            if summary.rows_in_doubt or summary.targets_in_doubt
            else ""
        )
        super().__init__(
            f"{reason}: {summary.rows_not_sent} rows and {summary.targets_not_sent} revealed targets were "
            f"not sent ({summary.rows} rows landed{doubt})"
        )


# --- records -------------------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def rows_as_dicts(frame: pd.DataFrame, with_target: bool = True) -> list[dict[str, Any]]:
    """JSON-ready rows: Python ints/floats/str, NaN -> None; `target` left out when `with_target` is false."""
    columns = [c for c in KAGGLE_COLUMNS if with_target or c != "target"]
    values: dict[str, list[Any]] = {}
    for column in columns:
        series = frame[column]
        if column in FLOAT_COLUMNS and column not in {"time_id", "row_id"}:
            array = series.to_numpy(dtype=np.float64)
            listed = array.tolist()
            if np.isnan(array).any():
                listed = [None if v != v else v for v in listed]
            values[column] = listed
        else:
            values[column] = series.tolist()
    return [dict(zip(columns, row, strict=True)) for row in zip(*(values[c] for c in columns), strict=True)]


def _chunked_json(
    items: list[dict[str, Any]], wrap: Callable[[list[dict[str, Any]]], dict[str, Any]], key: str
) -> list[bytes]:
    """Serialise `wrap(items)`, splitting `items` until every piece fits in one record."""
    data = _dumps(wrap(items))
    if len(data) + len(key.encode()) <= MAX_RECORD_BYTES:
        return [data]
    if len(items) <= 1:
        raise ValueError(f"one item alone is larger than a Kinesis record ({len(data)} bytes)")
    half = len(items) // 2
    return _chunked_json(items[:half], wrap, key) + _chunked_json(items[half:], wrap, key)


def snapshot_records(snapshot: pd.DataFrame, shape: Shape, with_target: bool = True) -> list[Record]:
    """The records of one snapshot (all rows share date_id and seconds_in_bucket)."""
    rows = rows_as_dicts(snapshot, with_target)
    if shape == "row":
        return [Record(_dumps(row), str(row["stock_id"]), rows=1) for row in rows]
    key = f"{rows[0]['date_id']}_{rows[0]['seconds_in_bucket']}"
    pieces = _chunked_json(rows, lambda part: {"data": part, "commit": True}, key)
    if len(pieces) == 1:
        return [Record(pieces[0], key, rows=len(rows))]
    return [Record(piece, key, rows=len(json.loads(piece)["data"])) for piece in pieces]


def target_records(day: pd.DataFrame) -> list[Record]:
    """`{"revealed_targets": [...]}` records for the rows of one day that have a target."""
    known = day[day["target"].notna()]
    if known.empty:
        return []
    date_id = int(known["date_id"].iloc[0])
    items = [
        {"date_id": d, "seconds_in_bucket": s, "stock_id": i, "target": t}
        for d, s, i, t in zip(
            known["date_id"].tolist(),
            known["seconds_in_bucket"].tolist(),
            known["stock_id"].tolist(),
            known["target"].to_numpy(dtype=np.float64).tolist(),
            strict=True,
        )
    ]
    key = f"targets_{date_id}"
    pieces = _chunked_json(items, lambda part: {"revealed_targets": part}, key)
    return [Record(piece, key, targets=len(json.loads(piece)["revealed_targets"])) for piece in pieces]


def batches(records: list[Record]) -> Iterator[list[Record]]:
    """Split into PutRecords batches of at most 500 records and 5 MiB."""
    batch: list[Record] = []
    size = 0
    for record in records:
        if batch and (len(batch) >= MAX_BATCH_RECORDS or size + record.size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record.size
    if batch:
        yield batch


# --- sending -------------------------------------------------------------------------------------------


class _Unsent(Exception):
    """`records` did not land; the first `in_doubt` of them were in a call that was cut short."""

    def __init__(self, reason: str, records: list[Record], in_doubt: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.records = records
        self.in_doubt = in_doubt


class _Sender:
    def __init__(self, client: Any, stream_name: str, options: ReplayOptions, summary: ReplaySummary) -> None:
        self.client = client
        self.stream_name = stream_name
        self.options = options
        self.summary = summary

    def _backoff(self, attempt: int) -> None:
        self.options.sleep(min(self.options.backoff_max, self.options.backoff_base * 2 ** (attempt - 1)))

    def _pause(self, attempt: int, waiting: list[Record]) -> None:
        """Back off before sending `waiting` again; interrupted, exactly those did not land."""
        try:
            self._backoff(attempt)
        except KeyboardInterrupt:
            raise _Unsent("interrupted", waiting) from None

    def put(self, batch: list[Record]) -> None:
        """Send one batch until every record landed; `_Unsent` with what never did."""
        pending = batch
        attempt = 0
        while pending:
            attempt += 1
            self.summary.batches += 1
            try:
                response = self.client.put_records(
                    StreamName=self.stream_name,
                    Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in pending],
                )
            except KeyboardInterrupt:
                # the call may or may not have landed: its records are "in doubt" (ingestion is idempotent,
                # so sending them again is safe)
                raise _Unsent("interrupted", pending, in_doubt=len(pending)) from None
            except (
                BotoCoreError
            ) as error:  # connection refused or reset, timeouts: the service is unreachable
                name = type(error).__name__
                self.summary.errors[name] = self.summary.errors.get(name, 0) + 1
                if attempt >= self.options.max_attempts:
                    raise _Unsent(f"PutRecords failed: {error}", pending) from error
                self.summary.retries += len(pending)
                self._pause(attempt, pending)
                continue
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "ClientError")
                self.summary.errors[code] = self.summary.errors.get(code, 0) + 1
                if code not in RETRYABLE_CALL_ERRORS or attempt >= self.options.max_attempts:
                    raise _Unsent(f"PutRecords failed with {code}: {error}", pending) from error
                self.summary.retries += len(pending)
                self._pause(attempt, pending)
                continue
            failed: list[Record] = []
            for record, result in zip(pending, response["Records"], strict=True):
                code = result.get("ErrorCode")
                if code:
                    failed.append(record)
                    self.summary.errors[code] = self.summary.errors.get(code, 0) + 1
                else:
                    self._landed(record)
            if failed and attempt >= self.options.max_attempts:
                codes = sorted({str(r.get("ErrorCode")) for r in response["Records"] if r.get("ErrorCode")})
                raise _Unsent(
                    f"{len(failed)} records still failing after {attempt} attempts ({', '.join(codes)})",
                    failed,
                )
            if failed:
                self.summary.retries += len(failed)
                self._pause(attempt, failed)
            pending = failed

    def _landed(self, record: Record) -> None:
        self.summary.records += 1
        self.summary.rows += record.rows
        self.summary.targets += record.targets


def _snapshots(frames: Iterable[pd.DataFrame]) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """(date_id, seconds, rows) in time order; frames must come in time order (each may be unsorted)."""
    last: tuple[int, int] | None = None
    for frame in frames:
        if frame.empty:
            continue
        frame = frame.sort_values(["date_id", "seconds_in_bucket", "stock_id"], kind="stable")
        keys = frame["date_id"].to_numpy(dtype=np.int64) * 100_000 + frame["seconds_in_bucket"].to_numpy(
            dtype=np.int64
        )
        bounds = np.flatnonzero(np.diff(keys)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(frame)], strict=True):
            date_id, seconds = int(keys[start] // 100_000), int(keys[start] % 100_000)
            if last is not None and (date_id, seconds) <= last:
                raise ValueError(f"frames out of time order: {(date_id, seconds)} after {last}")
            last = (date_id, seconds)
            yield date_id, seconds, frame.iloc[start:stop]


def replay(
    frames: Iterable[pd.DataFrame],
    client: Any,
    stream_name: str,
    options: ReplayOptions | None = None,
) -> ReplaySummary:
    """Send `frames` (Kaggle-schema frames in time order, e.g. one per day) to a Kinesis stream.

    Returns the summary; raises `ReplayError` (with the summary and the exact number of rows not sent) when
    records still fail after `options.max_attempts` attempts, or when the stream refuses the calls.
    """
    options = options or ReplayOptions()
    summary = ReplaySummary()
    sender = _Sender(client, stream_name, options, summary)
    started = options.clock()
    bar = tqdm(
        total=options.total_rows,
        unit="rows",
        unit_scale=True,
        file=sys.stderr,
        disable=not options.progress,
        desc="replay",
    )
    snapshot_gap = None if options.speed is None else SECONDS_STEP / options.speed
    day_rows: list[pd.DataFrame] = []  # this day's (keys, target), revealed when the day is over
    current_day: int | None = None
    snapshots = _snapshots(frames)
    in_hand: pd.DataFrame | None = None

    def send_all(records: list[Record]) -> None:
        offset = 0
        try:
            for batch in batches(records):
                before = summary.rows
                try:
                    sender.put(batch)
                except _Unsent as unsent:
                    raise _Unsent(
                        unsent.reason, unsent.records + records[offset + len(batch) :], unsent.in_doubt
                    ) from None
                offset += len(batch)
                bar.update(summary.rows - before)
        except KeyboardInterrupt:  # between two batches: everything from the next batch on is not sent
            raise _Unsent("interrupted", records[offset:]) from None

    def reveal() -> None:
        if day_rows:
            day = pd.concat(day_rows, ignore_index=True)
            day_rows.clear()
            send_all(target_records(day))

    try:
        for date_id, _seconds, rows in snapshots:
            in_hand = rows  # taken from the source, not yet given to the stream
            if date_id != current_day:
                reveal()
                current_day = date_id
                summary.days += 1
            if snapshot_gap is not None and summary.snapshots:
                wait = started + summary.snapshots * snapshot_gap - options.clock()
                if wait > 0:
                    options.sleep(wait)
            if options.reveal_targets:
                day_rows.append(rows[["date_id", "seconds_in_bucket", "stock_id", "target"]])
            records = snapshot_records(rows, options.shape, with_target=not options.reveal_targets)
            in_hand = None  # from here on, a failure accounts for these rows through its records
            send_all(records)
            summary.snapshots += 1
        reveal()
    except (_Unsent, KeyboardInterrupt, Exception) as stopped:
        # what failed, what was queued behind it, and everything after: the exact count of what did not land.
        # Anything else (a source that turns out unreadable half way, the stream refusing) ends the same way.
        if isinstance(stopped, _Unsent):
            unsent = stopped
        elif isinstance(stopped, KeyboardInterrupt):
            unsent = _Unsent("interrupted", [])
        else:
            unsent = _Unsent(f"stopped by {type(stopped).__name__}: {stopped}", [])
        doubtful, lost = unsent.records[: unsent.in_doubt], unsent.records[unsent.in_doubt :]
        summary.rows_in_doubt = sum(r.rows for r in doubtful)
        summary.targets_in_doubt = sum(r.targets for r in doubtful)
        summary.rows_not_sent = sum(r.rows for r in lost)
        summary.targets_not_sent = sum(r.targets for r in lost)
        summary.targets_not_sent += sum(int(d["target"].notna().sum()) for d in day_rows)
        if in_hand is not None:
            summary.rows_not_sent += len(in_hand)
            if options.reveal_targets:
                summary.targets_not_sent += int(in_hand["target"].notna().sum())
        for _, _, rows in snapshots:
            summary.rows_not_sent += len(rows)
            if options.reveal_targets:
                summary.targets_not_sent += int(rows["target"].notna().sum())
        if options.total_rows is not None:  # the source may not be readable any more after an interrupt
            summary.rows_not_sent = max(
                summary.rows_not_sent, options.total_rows - summary.rows - summary.rows_in_doubt
            )
        summary.elapsed = options.clock() - started
        bar.close()
        raise ReplayError(unsent.reason, summary) from None
    summary.elapsed = options.clock() - started
    bar.close()
    return summary


# --- sources -------------------------------------------------------------------------------------------


def open_source(
    sources: list[Path], date_range: tuple[int, int] | None = None
) -> tuple[Iterator[pd.DataFrame], int]:
    """(frames one day at a time, number of rows) for a generated directory or Kaggle CSV files.

    Kaggle rows that break the schema are left out and said on stderr (with file, line and column).
    """
    if len(sources) == 1 and is_generated(sources[0]):
        directory = sources[0]
        manifest = read_manifest(directory)
        if manifest["format"] == "parquet":
            total = pq.read_table(
                directory / manifest["files"]["train"],
                columns=["date_id"],
                filters=None
                if date_range is None
                else [("date_id", ">=", date_range[0]), ("date_id", "<=", date_range[1])],
            ).num_rows
            return iter_days(directory, date_range=date_range), total
        frame = read_dataset(directory, date_range=date_range, with_oracle=False)
        return split_days(frame), len(frame)
    files: list[Path] = []
    for source in sources:
        files.extend(kaggle_files(source) if source.is_dir() else [source])
    data = load_kaggle(files, date_range=date_range)
    if not data.report.ok:
        print(f"closecast replay: bad rows left out: {data.report.summary()}", file=sys.stderr)
    return split_days(data.frame), len(data.frame)
