"""The day store's bookkeeping: all SQL on `day_store`, and the database's view of each day.

The day store itself (one Parquet object per trading day under `days/` in the bucket) is written and read by
the image functions and the tools (Parquet needs pyarrow, which the layer does not import); this module holds
what they share with zip code: the object key, the `day_store` rows, each day's *source signature* (rows,
targets, last change in the database) that tells a stored day from a stale one, and the paged read of one
day's rows through the Data API.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from closecast.db.data_api import DataApi
from closecast.market.schema import KAGGLE_COLUMNS

PREFIX = "days/"


def key_of(date_id: int, prefix: str = PREFIX) -> str:
    """`days/date_id=0012.parquet` (zero-padded so that a listing sorts by date)."""
    return f"{prefix}date_id={date_id:04d}.parquet"


@dataclass(frozen=True)
class DaySource:
    """What the database holds for one day: rows, rows with a target, and a signature of its last change."""

    date_id: int
    n_rows: int
    n_targets: int
    signature: str

    @property
    def complete(self) -> bool:
        """Every row has its (revealed) target: the day can go to the store for training."""
        return self.n_rows > 0 and self.n_targets == self.n_rows


@dataclass(frozen=True)
class StoredDay:
    date_id: int
    key: str
    version: int
    sha256: str
    s3_version_id: str | None
    n_rows: int
    n_targets: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "date_id": self.date_id,
            "key": self.key,
            "version": self.version,
            "sha256": self.sha256,
            "s3_version_id": self.s3_version_id,
            "n_rows": self.n_rows,
            "n_targets": self.n_targets,
        }


# Rows and targets per day with the time of their last change: any upsert of a row sets updated_at, any
# revealed target sets revealed_at, so a changed day has a different signature.
_SOURCES_SQL = (
    "SELECT s.date_id, count(*) AS n_rows, count(COALESCE(r.target, s.target)) AS n_targets, "
    "max(s.updated_at)::text AS rows_changed, COALESCE(max(r.revealed_at)::text, '') AS targets_changed "
    "FROM stock_data AS s LEFT JOIN revealed_target AS r ON r.date_id = s.date_id "
    "AND r.seconds_in_bucket = s.seconds_in_bucket AND r.stock_id = s.stock_id "
    "WHERE s.date_id BETWEEN :first AND :last GROUP BY s.date_id ORDER BY s.date_id"
)

_STORED_COLUMNS = "date_id, key, version, sha256, s3_version_id, n_rows, n_targets, source"

_DAY_ROWS_SQL = (
    f"SELECT {', '.join(KAGGLE_COLUMNS)} FROM stock_data_with_target WHERE date_id = :date_id "
    "ORDER BY seconds_in_bucket, stock_id"
)

# A rewrite with new content bumps the version; the same content (rows sent again) only refreshes the source.
_RECORD_SQL = (
    "INSERT INTO day_store (date_id, key, version, sha256, s3_version_id, n_rows, n_targets, source) "
    "VALUES (:date_id, :key, 1, :sha256, :s3_version_id, :n_rows, :n_targets, :source) "
    "ON CONFLICT (date_id) DO UPDATE SET key = EXCLUDED.key, "
    "version = day_store.version + CASE WHEN day_store.sha256 = EXCLUDED.sha256 THEN 0 ELSE 1 END, "
    "sha256 = EXCLUDED.sha256, s3_version_id = EXCLUDED.s3_version_id, n_rows = EXCLUDED.n_rows, "
    "n_targets = EXCLUDED.n_targets, source = EXCLUDED.source, written_at = now() "
    f"RETURNING {_STORED_COLUMNS}"
)


def day_sources(api: DataApi, first: int, last: int) -> dict[int, DaySource]:
    """The database's days in [first, last] that have rows."""
    records = api.query(_SOURCES_SQL, {"first": first, "last": last})
    return {
        int(r["date_id"]): DaySource(
            int(r["date_id"]),
            int(r["n_rows"]),
            int(r["n_targets"]),
            f"{r['n_rows']}:{r['n_targets']}:{r['rows_changed']}:{r['targets_changed']}",
        )
        for r in records
    }


def stored_days(api: DataApi, first: int, last: int) -> dict[int, StoredDay]:
    records = api.query(
        f"SELECT {_STORED_COLUMNS} FROM day_store WHERE date_id BETWEEN :first AND :last ORDER BY date_id",
        {"first": first, "last": last},
    )
    return {int(r["date_id"]): _stored(r) for r in records}


def stored_day(api: DataApi, date_id: int) -> StoredDay | None:
    return stored_days(api, date_id, date_id).get(date_id)


def record_day(
    api: DataApi,
    *,
    date_id: int,
    key: str,
    sha256: str,
    s3_version_id: str | None,
    n_rows: int,
    n_targets: int,
    source: str,
) -> StoredDay:
    params = {
        "date_id": date_id,
        "key": key,
        "sha256": sha256,
        "s3_version_id": s3_version_id,
        "n_rows": n_rows,
        "n_targets": n_targets,
        "source": source,
    }
    return _stored(api.execute(_RECORD_SQL, params).records[0])


def iter_day_rows(api: DataApi, date_id: int) -> Iterator[dict[str, Any]]:
    """One day's rows (with revealed targets), Kaggle columns, in (seconds_in_bucket, stock_id) order, read in
    pages under the Data API's 1 MiB response limit."""
    return api.iter_query(_DAY_ROWS_SQL, {"date_id": date_id}, page_size=2000)


def stale_days(sources: Iterable[DaySource], stored: dict[int, StoredDay]) -> list[DaySource]:
    """Complete days that the store lacks or holds from an older state of the database."""
    return [
        s
        for s in sources
        if s.complete and (s.date_id not in stored or stored[s.date_id].source != s.signature)
    ]


def _stored(r: dict[str, Any]) -> StoredDay:
    return StoredDay(
        date_id=int(r["date_id"]),
        key=str(r["key"]),
        version=int(r["version"]),
        sha256=str(r["sha256"]),
        s3_version_id=r.get("s3_version_id"),
        n_rows=int(r["n_rows"]),
        n_targets=int(r["n_targets"]),
        source=str(r["source"]),
    )
