"""All SQL on `stock_data`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from closecast.db.data_api import DataApi
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.market.schema import KAGGLE_COLUMNS, Snapshot

_COLUMNS = ", ".join(KAGGLE_COLUMNS)
_KEY = ("date_id", "seconds_in_bucket", "stock_id")
_UPDATES = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in KAGGLE_COLUMNS if c not in (*_KEY, "target", "row_id", "time_id")
)

_VALUES = ", ".join(f":{c}" for c in KAGGLE_COLUMNS)

# Re-delivery is harmless: the natural key decides, features are overwritten with the same values, and a row
# sent again without its target keeps the target it had.
UPSERT_SQL = (
    f"INSERT INTO stock_data ({_COLUMNS}) VALUES ({_VALUES}) "
    "ON CONFLICT (date_id, seconds_in_bucket, stock_id) DO UPDATE SET "
    f"{_UPDATES}, target = COALESCE(EXCLUDED.target, stock_data.target), updated_at = now()"
)

# Revealed targets live in their own table and are joined on read (view stock_data_with_target), so a target
# that arrives before its row, or at the same instant on another shard, is never lost.
REVEAL_TARGET_SQL = (
    "INSERT INTO revealed_target (date_id, seconds_in_bucket, stock_id, target) "
    "VALUES (:date_id, :seconds_in_bucket, :stock_id, :target) "
    "ON CONFLICT (date_id, seconds_in_bucket, stock_id) DO UPDATE SET target = EXCLUDED.target, "
    "revealed_at = now()"
)

# Reads go through the view: rows with their revealed targets.
READ_TABLE = "stock_data_with_target"


@dataclass(frozen=True)
class RevealedTarget:
    date_id: int
    seconds_in_bucket: int
    stock_id: int
    target: float


def upsert(api: DataApi, rows: Sequence[Snapshot]) -> int:
    if not rows:
        return 0
    api.batch_execute(UPSERT_SQL, [row.model_dump() for row in rows])
    return len(rows)


def reveal_targets(api: DataApi, targets: Sequence[RevealedTarget]) -> int:
    if not targets:
        return 0
    param_sets = [
        {
            "date_id": t.date_id,
            "seconds_in_bucket": t.seconds_in_bucket,
            "stock_id": t.stock_id,
            "target": t.target,
        }
        for t in targets
    ]
    return api.batch_execute(REVEAL_TARGET_SQL, param_sets)


@dataclass(frozen=True)
class StockDataFilter:
    date_id: int | None = None
    date_id_from: int | None = None
    date_id_to: int | None = None
    stock_id: int | None = None
    seconds_in_bucket: int | None = None
    has_target: bool | None = None


def list_rows(api: DataApi, where: StockDataFilter, page: PageRequest) -> PageResult:
    clauses, params = where_clauses(
        {
            "date_id": ("date_id = :date_id", where.date_id),
            "date_id_from": ("date_id >= :date_id_from", where.date_id_from),
            "date_id_to": ("date_id <= :date_id_to", where.date_id_to),
            "stock_id": ("stock_id = :stock_id", where.stock_id),
            "seconds_in_bucket": ("seconds_in_bucket = :seconds_in_bucket", where.seconds_in_bucket),
        }
    )
    if where.has_target is not None:
        clauses.append("target IS NOT NULL" if where.has_target else "target IS NULL")
    return list_page(
        api,
        select=_COLUMNS,
        table=READ_TABLE,
        where=clauses,
        params=params,
        order_by="date_id, seconds_in_bucket, stock_id",
        request=page,
    )


# Bulk path (closecast backfill): one statement per chunk, the rows travelling as one JSON array parameter that
# PostgreSQL expands into records of the table's own types (Data API requests stay under 4 MiB).
BULK_UPSERT_SQL = (
    f"INSERT INTO stock_data ({_COLUMNS}) SELECT {_COLUMNS} "
    "FROM json_populate_recordset(NULL::stock_data, CAST(:rows AS json)) "
    "ON CONFLICT (date_id, seconds_in_bucket, stock_id) DO UPDATE SET "
    f"{_UPDATES}, target = COALESCE(EXCLUDED.target, stock_data.target), updated_at = now()"
)


def bulk_upsert_json(api: DataApi, rows_json: str) -> int:
    """Upsert the rows of a JSON array (Kaggle columns; null for a missing value) in one statement."""
    return api.execute(BULK_UPSERT_SQL, {"rows": rows_json}, idempotent=True).updated
