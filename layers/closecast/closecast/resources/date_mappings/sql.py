"""All SQL on `date_mapping`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from closecast.db.data_api import DataApi
from closecast.db.errors import UniqueViolation
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.errors import Conflict

COLUMNS = "date_id, trading_date"


def list_date_mappings(
    api: DataApi,
    page: PageRequest,
    *,
    date_id: int | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> PageResult:
    clauses, params = where_clauses(
        {
            "date_id": ("date_id = :date_id", date_id),
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


def upsert_date_mappings(api: DataApi, mappings: Sequence[tuple[int, dt.date]]) -> int:
    """Insert or correct mappings; a trading date already used by another date_id is a conflict."""
    sql = (
        "INSERT INTO date_mapping (date_id, trading_date) VALUES (:date_id, :trading_date) "
        "ON CONFLICT (date_id) DO UPDATE SET trading_date = EXCLUDED.trading_date"
    )
    try:
        return api.batch_execute(sql, [{"date_id": d, "trading_date": t} for d, t in mappings])
    except UniqueViolation as exc:
        raise Conflict(f"a trading_date is already mapped to another date_id: {exc}") from exc
