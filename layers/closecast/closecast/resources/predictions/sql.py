"""All SQL on `prediction`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from closecast.db.data_api import DataApi
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses

COLUMNS = (
    "date_id, seconds_in_bucket, stock_id, model_id, row_id, value, partial, missing_before, created_at, "
    "updated_at"
)
KEY = ("date_id", "seconds_in_bucket", "stock_id", "model_id")

# One statement per chunk: the rows travel as one JSON parameter, expanded in SQL. A replayed snapshot
# updates its predictions (upsert on row and model), never adds a second one.
_UPSERT_SQL = (
    "INSERT INTO prediction (date_id, seconds_in_bucket, stock_id, model_id, row_id, value, partial, "
    "missing_before) SELECT date_id, seconds_in_bucket, stock_id, model_id, row_id, value, partial, "
    "missing_before FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(date_id integer, "
    "seconds_in_bucket integer, stock_id integer, model_id bigint, row_id text, value double precision, "
    "partial boolean, missing_before integer) "
    "ON CONFLICT (date_id, seconds_in_bucket, stock_id, model_id) DO UPDATE SET value = EXCLUDED.value, "
    "row_id = EXCLUDED.row_id, partial = EXCLUDED.partial, missing_before = EXCLUDED.missing_before, "
    "updated_at = now()"
)
CHUNK_ROWS = 5000  # ~100 bytes a row as JSON: well under the Data API's 4 MiB request


def upsert(api: DataApi, rows: Sequence[dict[str, Any]]) -> int:
    """Store predictions (dicts with the columns of `_UPSERT_SQL`); returns how many rows were written."""
    written = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = json.dumps(list(rows[start : start + CHUNK_ROWS]), allow_nan=False)
        written += api.execute(_UPSERT_SQL, {"rows": chunk}, idempotent=True).updated
    return written


def list_predictions(
    api: DataApi,
    page: PageRequest,
    *,
    date_id: int | None = None,
    seconds_in_bucket: int | None = None,
    stock_id: int | None = None,
    model_id: int | None = None,
    partial: bool | None = None,
) -> PageResult:
    clauses, params = where_clauses(
        {
            "date_id": ("date_id = :date_id", date_id),
            "seconds_in_bucket": ("seconds_in_bucket = :seconds_in_bucket", seconds_in_bucket),
            "stock_id": ("stock_id = :stock_id", stock_id),
            "model_id": ("model_id = :model_id", model_id),
            "partial": ("partial = :partial", partial),
        }
    )
    return list_page(
        api,
        select=COLUMNS,
        table="prediction",
        where=clauses,
        params=params,
        order_by="date_id, seconds_in_bucket, stock_id, model_id",
        request=page,
    )


def day_predictions(api: DataApi, model_id: int, date_id: int) -> list[dict[str, Any]]:
    """Every prediction of one model on one day with the row's revealed target (None while unknown), in key
    order, read in pages under the Data API's 1 MiB."""
    return api.query(
        "SELECT p.seconds_in_bucket, p.stock_id, p.value, p.partial, s.target FROM prediction AS p "
        "LEFT JOIN stock_data_with_target AS s ON s.date_id = p.date_id "
        "AND s.seconds_in_bucket = p.seconds_in_bucket AND s.stock_id = p.stock_id "
        "WHERE p.model_id = :model_id AND p.date_id = :date_id ORDER BY p.seconds_in_bucket, p.stock_id",
        {"model_id": model_id, "date_id": date_id},
        page_size=5000,
    )
