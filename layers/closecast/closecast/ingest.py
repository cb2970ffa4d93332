"""Kinesis -> stock_data. Validates every record, writes the good rows in as few Data API calls as fit,
quarantines the bad ones in S3 with their reason, and reports back only what must be delivered again.

Record shapes (JSON, UTF-8):
- one snapshot row: an object with the Kaggle columns;
- an envelope: `{"data": [row, ...], "commit": true}` (`commit: false` validates without storing);
- revealed targets: `{"revealed_targets": [{"date_id", "seconds_in_bucket", "stock_id", "target"}, ...]}`.

Why not one Data API call per record (Powertools' BatchProcessor record handler): a batch of 100 records
would cost 100 round trips. Here the batch is validated record by record and written in bulk, one statement per
~4 MiB (rows, revealed targets and new date mappings together), a group being written while the next is
validated; if a write fails for a reason a record carries (a constraint the validation did not catch), its
records are written one by one, then row by row, so that only the offending row is quarantined. Transient faults fail the records they touch, so that
Kinesis delivers them again from the lowest failed sequence number; upserts make that harmless.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from closecast.db.data_api import DataApi
from closecast.db.errors import DataApiError, DatabaseError
from closecast.errors import ConfigurationError
from closecast.market.schema import LAST_SECOND, MAX_DATE_ID, MAX_STOCK_ID, Snapshot, snapshots_of_rows
from closecast.resources.stock_data import sql as stock_data


class Envelope(BaseModel):
    """The envelope itself; its rows are validated one by one so that a bad row does not sink the others."""

    model_config = ConfigDict(extra="forbid", strict=True)
    data: list[Any] = Field(max_length=20_000)
    commit: bool = True


class TargetRow(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    date_id: int = Field(ge=0, le=MAX_DATE_ID)
    seconds_in_bucket: int = Field(ge=0, le=LAST_SECOND, multiple_of=10)
    stock_id: int = Field(ge=0, le=MAX_STOCK_ID)
    target: float = Field(allow_inf_nan=False)


class RevealedTargets(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    revealed_targets: list[TargetRow] = Field(max_length=50_000)


@dataclass
class StreamRecord:
    sequence_number: str
    partition_key: str
    data: bytes
    shard_id: str = ""
    arrival: float | None = None


@dataclass
class Rejection:
    record: StreamRecord
    reason: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    row_index: int | None = None


@dataclass
class Parsed:
    """What one record asks to write. `rows[i]` came from position `row_indices[i]` of an envelope (None for a
    single-row record), so that a row the database refuses can be quarantined alone."""

    record: StreamRecord
    rows: list[Snapshot] = field(default_factory=list)
    targets: list[stock_data.RevealedTarget] = field(default_factory=list)
    row_indices: list[int | None] = field(default_factory=list)

    def size(self) -> int:
        return len(self.rows) + len(self.targets)

    def halves(self) -> tuple[Parsed, Parsed]:
        """Split the rows (or, with one row or none, the targets) in two, for isolating a refused one."""
        if len(self.rows) > 1:
            mid = len(self.rows) // 2
            first = Parsed(self.record, self.rows[:mid], [], self.row_indices[:mid])
            second = Parsed(self.record, self.rows[mid:], self.targets, self.row_indices[mid:])
        elif self.rows:
            first = Parsed(self.record, self.rows, [], self.row_indices)
            second = Parsed(self.record, [], self.targets, [])
        else:
            mid = len(self.targets) // 2
            first = Parsed(self.record, [], self.targets[:mid], [])
            second = Parsed(self.record, [], self.targets[mid:], [])
        return first, second


@dataclass
class BatchOutcome:
    rows_written: int = 0
    targets_revealed: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    failed_sequence_numbers: list[str] = field(default_factory=list)
    target_dates: list[int] = field(default_factory=list)  # days whose revealed targets this batch wrote
    row_dates: list[int] = field(default_factory=list)  # days whose rows this batch wrote

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": s} for s in self.failed_sequence_numbers]}


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]),
            "message": e["msg"],
            "input": repr(e.get("input"))[:200],
        }
        for e in exc.errors(include_url=False)
    ]


def _json(data: bytes) -> Any:
    """The record's JSON, read by pydantic-core's parser (1.7x faster than the standard library's on an
    envelope of 200 rows); whatever it refuses (a UTF-8 BOM, UTF-16, a lone surrogate escape, and every bad
    document) is read again by `json.loads`, so exactly the records the standard library reads are read, to the
    same values, and a bad one is refused with its message."""
    try:
        return from_json(data, cache_strings="keys")
    except ValueError:
        return json.loads(data)


def parse(record: StreamRecord) -> tuple[Parsed, list[Rejection]]:
    """Validate one record. Bad rows of an envelope are rejected one by one; the good ones go on."""
    parsed = Parsed(record)
    try:
        payload = _json(record.data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return parsed, [Rejection(record, f"not JSON: {exc}")]
    if not isinstance(payload, dict):
        return parsed, [Rejection(record, f"expected a JSON object, got {type(payload).__name__}")]
    if "revealed_targets" in payload:
        try:
            targets = RevealedTargets.model_validate(payload)
        except ValidationError as exc:
            return parsed, [Rejection(record, "invalid revealed_targets record", _errors(exc))]
        parsed.targets = [stock_data.RevealedTarget(**t.model_dump()) for t in targets.revealed_targets]
        return parsed, []
    if "data" in payload:
        try:
            envelope = Envelope.model_validate(payload)
        except ValidationError as exc:
            return parsed, [Rejection(record, "invalid envelope", _errors(exc))]
        valid = snapshots_of_rows(envelope.data)  # every row plainly valid: checked column by column
        if valid is not None:
            if envelope.commit:
                parsed.rows = valid
                parsed.row_indices = list(range(len(valid)))
            return parsed, []
        rejections: list[Rejection] = []
        for index, row in enumerate(envelope.data):
            try:
                snapshot = Snapshot.model_validate(row)
            except ValidationError as exc:
                rejections.append(Rejection(record, "invalid row in envelope", _errors(exc), row_index=index))
                continue
            if envelope.commit:
                parsed.rows.append(snapshot)
                parsed.row_indices.append(index)
        return parsed, rejections
    try:
        parsed.rows = [Snapshot.model_validate(payload)]
        parsed.row_indices = [None]
    except ValidationError as exc:
        return parsed, [Rejection(record, "invalid row", _errors(exc))]
    return parsed, []


def _write(api: DataApi, items: Sequence[Parsed], date_of: stock_data.DateOf | None) -> tuple[int, int]:
    """One bulk write of the items' rows and targets (later records win within a batch: Kinesis keeps order
    per shard), creating the date mappings of new date_ids."""
    result = stock_data.write(
        api,
        [row for item in items for row in item.rows],
        [t for item in items for t in item.targets],
        date_of=date_of,
    )
    return result.rows, result.targets


def _refused(exc: Exception) -> bool:
    """True when the data itself is refused (retrying cannot help), False for faults worth retrying."""
    if isinstance(exc, DatabaseError):
        return exc.is_data_error
    return isinstance(exc, ValueError | TypeError)  # a value the Data API cannot even carry


def _write_isolating(
    api: DataApi,
    item: Parsed,
    outcome: BatchOutcome,
    failed: set[str],
    date_of: stock_data.DateOf | None,
) -> None:
    """Write one record's rows; when the database refuses some, halve until each refused row stands alone and
    quarantine just those."""
    try:
        rows, targets = _write(api, [item], date_of)
    except (DataApiError, ConfigurationError, ValueError, TypeError) as exc:
        if not _refused(exc):
            failed.add(item.record.sequence_number)
            return
        if item.size() > 1:
            for half in item.halves():
                _write_isolating(api, half, outcome, failed, date_of)
            return
        index = item.row_indices[0] if item.rows else None
        outcome.rejections.append(Rejection(item.record, f"refused by the database: {exc}", row_index=index))
        return
    outcome.rows_written += rows
    outcome.targets_revealed += targets


@dataclass
class QuarantineEntry:
    """Everything rejected from one record: one S3 object per record, however many of its rows were bad."""

    record: StreamRecord
    rejections: list[Rejection]

    def key(self, prefix: str) -> str:
        """Named by the record's content: the same bad record delivered or replayed again lands on the same
        object, so a replay changes nothing in the quarantine either."""
        return f"{prefix}{hashlib.sha256(self.record.data).hexdigest()}.json"

    @property
    def reason(self) -> str:
        if len(self.rejections) == 1:
            return self.rejections[0].reason
        kinds = sorted({r.reason.split(":", 1)[0] for r in self.rejections})
        return f"{len(self.rejections)} rows rejected ({'; '.join(kinds)})"

    def document(self) -> dict[str, Any]:
        record = self.record
        try:
            text: str | None = record.data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "reason": self.reason,
            "rejections": [
                {"row_index": r.row_index, "reason": r.reason, "errors": r.errors} for r in self.rejections
            ],
            "record": {
                "sequence_number": record.sequence_number,
                "partition_key": record.partition_key,
                "shard_id": record.shard_id,
                "approximate_arrival_timestamp": record.arrival,
                "data": text,
                "data_base64": None if text is not None else base64.b64encode(record.data).decode(),
            },
            "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
        }


def quarantine_entries(rejections: Sequence[Rejection]) -> list[QuarantineEntry]:
    entries: dict[str, QuarantineEntry] = {}
    for rejection in rejections:
        sequence = rejection.record.sequence_number
        entries.setdefault(sequence, QuarantineEntry(rejection.record, [])).rejections.append(rejection)
    return list(entries.values())


# Stores the entries; returns the sequence numbers of those it could not store (they are delivered again).
Quarantine = Callable[[Sequence[QuarantineEntry]], set[str]]


# Rows per write while the rest of the batch is still being validated. A 6 MB Kinesis batch of envelopes
# (~13,000 rows) is one group, one Data API call: the mapping's ParallelizationFactor already overlaps one
# batch's validation with another's write.
GROUP_ROWS = 20_000


def _parse_safely(record: StreamRecord) -> tuple[Parsed, list[Rejection]]:
    try:
        return parse(record)
    except Exception as exc:  # no record may crash the batch: an unforeseen fault quarantines it
        return Parsed(record), [Rejection(record, f"unreadable record: {type(exc).__name__}")]


def _write_group(
    api: DataApi, items: list[Parsed], date_of: stock_data.DateOf | None
) -> tuple[BatchOutcome, set[str]]:
    """Write the rows of whole records in one go; when the database refuses something, find it record by
    record and then row by row; on a transient fault, fail the group's records (delivered again)."""
    outcome = BatchOutcome()
    failed: set[str] = set()
    try:
        outcome.rows_written, outcome.targets_revealed = _write(api, items, date_of)
    except (DataApiError, ConfigurationError, ValueError, TypeError) as exc:
        if _refused(exc):
            for item in items:
                _write_isolating(api, item, outcome, failed, date_of)
        else:  # transient (resuming, throttled, deadlock, ...): Kinesis delivers these records again
            failed.update(p.record.sequence_number for p in items)
    return outcome, failed


def process_batch(
    api: DataApi,
    records: Sequence[StreamRecord],
    quarantine: Quarantine,
    date_of: stock_data.DateOf | None = None,
) -> BatchOutcome:
    """Validate the records in order and write their rows in groups of whole records (about one request
    each): a group is written by one writer thread while the next is validated, so the database and the
    validation work at the same time. Groups are written in order, so a later record still wins."""
    outcome = BatchOutcome()
    failed: set[str] = set()
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: list[Future[tuple[BatchOutcome, set[str]]]] = []
        group: list[Parsed] = []
        writable: list[Parsed] = []
        size = 0
        for record in records:
            parsed, rejections = _parse_safely(record)
            outcome.rejections.extend(rejections)
            if not parsed.size():
                continue
            writable.append(parsed)
            group.append(parsed)
            size += parsed.size()
            if size >= GROUP_ROWS:
                pending.append(writer.submit(_write_group, api, group, date_of))
                group, size = [], 0
        if group:
            pending.append(writer.submit(_write_group, api, group, date_of))
        for future in pending:
            written, group_failed = future.result()
            outcome.rows_written += written.rows_written
            outcome.targets_revealed += written.targets_revealed
            outcome.rejections.extend(written.rejections)
            failed |= group_failed

    entries = quarantine_entries(outcome.rejections)
    if entries:
        try:
            failed |= quarantine(entries)
        except Exception:  # a record that cannot be quarantined must not be lost: deliver it again
            failed.update(e.record.sequence_number for e in entries)
    outcome.failed_sequence_numbers = [r.sequence_number for r in records if r.sequence_number in failed]
    outcome.target_dates = sorted(
        {t.date_id for p in writable if p.record.sequence_number not in failed for t in p.targets}
    )
    outcome.row_dates = sorted(
        {r.date_id for p in writable if p.record.sequence_number not in failed for r in p.rows}
    )
    return outcome


def records_from_event(event: dict[str, Any]) -> list[StreamRecord]:
    records = []
    for raw in event.get("Records", []):
        kinesis = raw["kinesis"]
        event_id = str(raw.get("eventID", ""))
        records.append(
            StreamRecord(
                sequence_number=kinesis["sequenceNumber"],
                partition_key=kinesis.get("partitionKey", ""),
                data=base64.b64decode(kinesis["data"]),
                shard_id=event_id.split(":", 1)[0],
                arrival=kinesis.get("approximateArrivalTimestamp"),
            )
        )
    return records
