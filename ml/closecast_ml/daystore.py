"""The day store: each trading day one Parquet object in S3 (`days/date_id=NNNN.parquet`), what training reads.

A day goes to the store once it is complete (every row has its revealed target), written from the database
through paged Data API reads (or straight from a file by `closecast backfill`), and is rewritten when its rows or
targets change in the database: the `day_store` table keeps each day's version (bumped when the content
changes), content hash, S3 version id and the database signature it was written from (closecast.day_store).
Reading 481 days is 481 GETs in parallel, not millions of rows through the Data API.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from closecast import day_store as book
from closecast.db.data_api import DataApi
from closecast.market.schema import KAGGLE_COLUMNS
from closecast_ml.frames import normalise

COLUMNS = list(KAGGLE_COLUMNS)


def encode(frame: pd.DataFrame) -> bytes:
    """One day as Parquet bytes (Kaggle columns and dtypes, sorted): the same rows give the same bytes."""
    table = pa.Table.from_pandas(normalise(frame[COLUMNS]).reset_index(drop=True), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def decode(data: bytes) -> pd.DataFrame:
    return normalise(pq.read_table(io.BytesIO(data)).to_pandas())


def frame_of_records(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return normalise(pd.DataFrame.from_records(list(records), columns=COLUMNS))


@dataclass
class SyncReport:
    written: list[book.StoredDay] = field(default_factory=list)
    up_to_date: int = 0
    incomplete: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": [d.date_id for d in self.written],
            "up_to_date": self.up_to_date,
            "incomplete": self.incomplete,
        }


class DayStore:
    def __init__(
        self, api: DataApi, s3: Any, bucket: str, prefix: str = book.PREFIX, workers: int = 8
    ) -> None:
        self.api, self.s3, self.bucket, self.prefix, self.workers = api, s3, bucket, prefix, workers

    # ------------------------------------------------------------------ writing
    def put_day(self, frame: pd.DataFrame, source: book.DaySource) -> book.StoredDay:
        """Write one day's rows as its object, then record it (version bumped if the content changed)."""
        data = encode(frame)
        key = book.key_of(source.date_id, self.prefix)
        response = self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType="application/vnd.apache.parquet"
        )
        return book.record_day(
            self.api,
            date_id=source.date_id,
            key=key,
            sha256=hashlib.sha256(data).hexdigest(),
            s3_version_id=response.get("VersionId"),
            n_rows=source.n_rows,
            n_targets=source.n_targets,
            source=source.signature,
        )

    def read_from_database(self, date_id: int) -> pd.DataFrame:
        """One day's rows through the Data API, in pages under its 1 MiB response limit."""
        return frame_of_records(book.iter_day_rows(self.api, date_id))

    def sync(self, first: int, last: int) -> SyncReport:
        """Write the complete days in [first, last] that the store lacks or holds from an older state."""
        sources = book.day_sources(self.api, first, last)
        stored = book.stored_days(self.api, first, last)
        report = SyncReport(incomplete=[d for d, s in sources.items() if not s.complete])
        stale = book.stale_days(sources.values(), stored)
        report.up_to_date = len(sources) - len(report.incomplete) - len(stale)
        for source in stale:
            report.written.append(self.put_day(self.read_from_database(source.date_id), source))
        return report

    # ------------------------------------------------------------------ reading
    def read_day(self, day: book.StoredDay) -> pd.DataFrame:
        """The stored day, at the version recorded (S3 version id when the bucket keeps versions)."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": day.key}
        if day.s3_version_id and day.s3_version_id != "null":
            request["VersionId"] = day.s3_version_id
        return decode(self.s3.get_object(**request)["Body"].read())

    def read_days(self, days: Sequence[book.StoredDay]) -> pd.DataFrame:
        if not days:
            return frame_of_records([])
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            frames = list(pool.map(self.read_day, days))
        return normalise(pd.concat(frames, ignore_index=True))

    def stored(self, first: int, last: int) -> list[book.StoredDay]:
        return sorted(book.stored_days(self.api, first, last).values(), key=lambda d: d.date_id)
