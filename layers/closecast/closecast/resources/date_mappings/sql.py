"""All SQL on `date_mapping`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from closecast.db.data_api import DataApi
from closecast.db.errors import UniqueViolation
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.errors import Conflict

COLUMNS = "date_id, trading_date, trading_date AS date"

# Creates the mappings of new date_ids from a JSON array parameter ({param}) of {"date_id", "trading_date"};
# an existing mapping (of the date_id, or of the trading date to another date_id) is left as it is. Used inside
# the stock_data write statement, so that ingest creates the mappings in the same call.
INSERT_NEW_FROM_JSON_SQL = (
    "INSERT INTO date_mapping (date_id, trading_date) "
    "SELECT d.date_id, d.trading_date FROM json_to_recordset(CAST({param} AS json)) "
    "AS d(date_id integer, trading_date date) ON CONFLICT DO NOTHING RETURNING 1"
)


def list_date_mappings(
    api: DataApi,
    page: PageRequest,
    *,
    date_id: int | None = None,
    date: dt.date | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> PageResult:
    clauses, params = where_clauses(
        {
            "date_id": ("date_id = :date_id", date_id),
            "date": ("trading_date = :date", date),
            "date_from": ("trading_date >= :date_from", date_from),
            "date_to": ("trading_date <= :date_to", date_to),
        }
    )
    return list_page(
        api,
        select=COLUMNS,
        table="date_mapping",
        where=clauses,
        params=params,
        order_by="date_id",
        request=page,
    )


UPSERT_FROM_JSON_SQL = (
    "INSERT INTO date_mapping (date_id, trading_date) "
    "SELECT d.date_id, d.trading_date FROM json_to_recordset(CAST(:mappings AS json)) "
    "AS d(date_id integer, trading_date date) "
    "ON CONFLICT (date_id) DO UPDATE SET trading_date = EXCLUDED.trading_date"
)


def upsert_date_mappings(api: DataApi, mappings: Sequence[tuple[int, dt.date]]) -> int:
    """Insert or correct mappings (one statement); a trading date already used by another date_id is a
    conflict."""
    latest = dict(mappings)  # a later duplicate date_id wins, as row by row it did
    text = json.dumps(
        [{"date_id": d, "trading_date": t.isoformat()} for d, t in sorted(latest.items())],
        separators=(",", ":"),
    )
    try:
        api.execute(UPSERT_FROM_JSON_SQL, {"mappings": text})
        return len(mappings)
    except UniqueViolation as exc:
        raise Conflict("a trading date of the request is already mapped to another date_id") from exc
