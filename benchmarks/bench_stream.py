"""The write path, side by side in one run of the local cloud (same PostgreSQL, same rows):

* `copy`: PostgreSQL COPY of the rows straight into stock_data (psycopg; the ceiling);
* `data_api_bulk`: the closecast write (`resources.stock_data.sql.write`: one statement per ~4 MiB chunk, the
  rows as one array-literal parameter per column) through the local Data API endpoint, and its ratio to COPY;
* `data_api_per_row`: the previous write (BatchExecuteStatement, one parameter set per row), for comparison;
* `stream_end_to_end`: the same rows (3 copies, 99,000) replayed as envelopes onto Kinesis (moto) until the
  HTTP API sees every row: rows/s, ratio to COPY, Data API calls per 10,000 rows. A burst: the mapping's last
  partial batches wait out its 1 s batching window (Lambda's MaximumBatchingWindowInSeconds), paid once;
* `stream_sustained`: the same measurement over 10 copies (330,000 rows), where that window is a smaller part;
* `put_to_visible`: PutRecords of one row until GET /stock_data/ returns it (p50/p99);
* `api`: GET /stock_data/ latency for a 1,000-row page and for a filtered query (p50/p99).

Rows: the Kaggle example test.csv (33,000 real rows) when ../shared/data is there, else the synthetic market.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from botocore.config import Config

from closecast.db.data_api import DataApi
from closecast.market.schema import KAGGLE_COLUMNS, STORED_COLUMNS, Snapshot
from closecast.resources.stock_data import sql
from closecast_tools.local.cloud import CloudOptions, LocalCloud, auth_headers, client, repo_root
from closecast_tools.local.http import authorize
from closecast_tools.market.replay import batches, rows_as_dicts, snapshot_records

ROUNDS = 3
STREAM_COPIES = 3
SUSTAINED_COPIES = 10
TRIES = 20
API_TRIES = 50
EXAMPLE = repo_root().parent / "shared" / "data" / "kaggle-example" / "test.csv"

# the demo user's Authorization header once a cloud is up: reads go through the JWT check as on AWS
_SIGN_IN: Callable[[], dict[str, str]] = dict


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(_percentile(values, 0.99) * 1000, 1),
        "tries": len(values),
    }


def _frame() -> tuple[pd.DataFrame, str]:
    if EXAMPLE.is_file():
        frame = pd.read_csv(EXAMPLE)
        source = "kaggle-example/test.csv"
    else:
        from closecast_tools.market.generate import generate_frame

        frame = generate_frame(days=3, seed=5)
        source = "synthetic (3 days)"
    frame = frame.assign(target=frame["target"] if "target" in frame else float("nan"))
    return frame[list(KAGGLE_COLUMNS)], source


def _moved(frame: pd.DataFrame, first_date_id: int) -> pd.DataFrame:
    """The rows on fresh date_ids from `first_date_id` (each measurement inserts, none updates)."""
    dates = frame["date_id"].astype("int64")
    date_id = dates - dates.min() + first_date_id
    seconds = frame["seconds_in_bucket"].astype("int64")
    return frame.assign(
        date_id=date_id,
        time_id=date_id * 55 + seconds // 10,
        row_id=date_id.astype(str) + "_" + seconds.astype(str) + "_" + frame["stock_id"].astype(str),
    )


def _snapshots(frame: pd.DataFrame) -> list[Snapshot]:
    return [Snapshot.model_validate({**row, "train_type": None}) for row in rows_as_dicts(frame)]


def _copy(dsn: str, frame: pd.DataFrame) -> float:
    rows = [tuple(r[c] for c in KAGGLE_COLUMNS) for r in rows_as_dicts(frame)]
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY stock_data ({', '.join(KAGGLE_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def _rds(url: str) -> Any:
    return client("rds-data", url, Config(retries={"total_max_attempts": 1}, read_timeout=300))


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=_SIGN_IN()), timeout=60) as response:
        return dict(json.loads(response.read()))


def _wait_total(url: str, expected: int, timeout_s: float = 600, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while int(_get(url)["total_results"]) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: fewer than {expected} rows after {timeout_s} s")
        time.sleep(interval)


def _writes(cloud: LocalCloud) -> int:
    assert cloud.data_api is not None
    return sum(count for key, count in cloud.data_api.calls.items() if key.endswith(":write"))


def _one_row(date_id: int, stock_id: int = 7) -> bytes:
    row = dict.fromkeys(KAGGLE_COLUMNS)
    row.update(stock_id=stock_id, date_id=date_id, seconds_in_bucket=0, imbalance_buy_sell_flag=1, wap=1.0)
    row.pop("time_id")
    row.pop("row_id")
    return json.dumps(row).encode()


def _stream(
    cloud: LocalCloud, kinesis: Any, frame: pd.DataFrame, first_date: int, copies: int
) -> dict[str, Any]:
    """`copies` copies of the rows from `first_date` on, replayed as envelopes, put back to back (PutRecords
    of up to 500 records / 5 MiB, as a busy producer sends) until the HTTP API sees every row."""
    http = cloud.state["api_url"]
    stream = pd.concat([_moved(frame, first_date + 10 * copy) for copy in range(copies)])
    records = [
        record
        for _, snapshot in stream.groupby(["date_id", "seconds_in_bucket"], sort=True)
        for record in snapshot_records(snapshot, "envelope")
    ]
    calls_before = _writes(cloud)
    began = time.perf_counter()
    for batch in batches(records):
        response = kinesis.put_records(
            StreamName=cloud.state["stream_name"],
            Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in batch],
        )
        assert response["FailedRecordCount"] == 0
    put_s = time.perf_counter() - began
    last = int(stream["date_id"].max())
    _wait_total(
        f"{http}/stock_data/?date_id_from={first_date}&date_id_to={last}&page_size=1",
        len(stream),
        interval=0.1,
    )
    visible_s = time.perf_counter() - began
    calls = _writes(cloud) - calls_before  # the ingest function's (the wait loop only reads)
    return {
        "rows": len(stream),
        "records": len(records),
        "put_seconds": round(put_s, 3),
        "visible_seconds": round(visible_s, 3),
        "rows_per_s": round(len(stream) / visible_s),
        "data_api_write_calls": calls,
        "calls_per_10000_rows": round(calls / len(stream) * 10_000, 2),
    }


def run() -> dict[str, Any]:
    frame, source = _frame()
    n = len(frame)
    with tempfile.TemporaryDirectory() as tmp:
        cloud = LocalCloud(CloudOptions(root=repo_root(), state_dir=Path(tmp) / "state")).start()
        _sign_in_as_demo_user(cloud.state)
        try:
            assert cloud.data_api is not None and cloud.postgres is not None
            dsn = cloud.postgres.ensure_database(cloud.database)
            api = DataApi(_rds(cloud.data_api.url), cloud.cluster_arn, cloud.secret_arn, cloud.database)
            copy_s, bulk_s, bulk_calls = [], [], []
            next_date = 20_000
            for _ in range(ROUNDS):  # interleaved, so that machine noise falls on both alike
                copy_s.append(_copy(dsn, _moved(frame, next_date)))
                rows = _snapshots(_moved(frame, next_date + 10))
                bulk_s.append(_timed(lambda rows=rows: bulk_calls.append(sql.write(api, rows).calls)))
                next_date += 20
            per_row_rows = _snapshots(_moved(frame, next_date))
            values = [r.model_dump(include=set(STORED_COLUMNS)) for r in per_row_rows]
            columns = ", ".join(STORED_COLUMNS)
            insert = (
                f"INSERT INTO stock_data ({columns}) VALUES ({', '.join(':' + c for c in STORED_COLUMNS)})"
            )
            per_row_s = _timed(lambda: api.batch_execute(insert, values))
            copy_rate = n / statistics.median(copy_s)
            bulk_rate = n / statistics.median(bulk_s)

            # the stream, end to end: replay as envelopes, until the HTTP API sees every row
            kinesis = client("kinesis", cloud.state["aws_endpoint_url"])
            http = cloud.state["api_url"]
            # functions warm, as in steady state: rows on eight partition keys, so that every batch the mapping
            # runs side by side (ParallelizationFactor) has met a warm instance
            kinesis.put_records(
                StreamName=cloud.state["stream_name"],
                Records=[
                    {"Data": _one_row(29_999, stock), "PartitionKey": f"w{stock}"} for stock in range(8)
                ],
            )
            _wait_total(f"{http}/stock_data/?date_id=29999", 8)
            # STREAM_COPIES copies of the rows on fresh dates, put back to back (a burst: its last partial batches
            # wait out the mapping's 1 s batching window, paid once per burst); then SUSTAINED_COPIES, where the
            # same window is a smaller part of the time
            stream = _stream(cloud, kinesis, frame, 30_000, STREAM_COPIES)
            sustained = _stream(cloud, kinesis, frame, 31_000, SUSTAINED_COPIES)

            latencies = []
            for i in range(TRIES):
                date_id = 29_000 + i
                began = time.perf_counter()
                kinesis.put_records(
                    StreamName=cloud.state["stream_name"],
                    Records=[{"Data": _one_row(date_id), "PartitionKey": "7"}],
                )
                _wait_total(f"{http}/stock_data/?date_id={date_id}", 1, interval=0.005)
                latencies.append(time.perf_counter() - began)

            page, filtered = [], []
            for i in range(API_TRIES):
                page.append(_timed(lambda: _get(f"{http}/stock_data/?date_id=30000&page_size=1000&page=2")))
                filtered.append(
                    _timed(
                        lambda i=i: _get(
                            f"{http}/stock_data/?date_id=30001&stock_id={i % 200}&has_target=false"
                        )
                    )
                )
        finally:
            cloud.stop()
    return {
        "rows": n,
        "source": source,
        "copy": {"rows_per_s": round(copy_rate), "seconds": [round(s, 3) for s in copy_s]},
        "data_api_bulk": {
            "rows_per_s": round(bulk_rate),
            "seconds": [round(s, 3) for s in bulk_s],
            "ratio_to_copy": round(bulk_rate / copy_rate, 3),
            "calls": bulk_calls[0],
            "calls_per_10000_rows": round(bulk_calls[0] / n * 10_000, 2),
        },
        "data_api_per_row": {
            "rows_per_s": round(n / per_row_s),
            "seconds": round(per_row_s, 3),
            "ratio_to_copy": round((n / per_row_s) / copy_rate, 3),
        },
        "stream_end_to_end": {**stream, "ratio_to_copy": round(stream["rows_per_s"] / copy_rate, 3)},
        "stream_sustained": {
            **sustained,
            "ratio_to_copy": round(sustained["rows_per_s"] / copy_rate, 3),
            "note": f"{SUSTAINED_COPIES} copies of the rows put back to back: the mapping's batching window "
            "(put_to_visible) is paid once, as in stream_end_to_end",
        },
        "put_to_visible": {**_ms(latencies), "note": "includes the mapping's 1 s batching window"},
        "api": {"page_1000_rows": _ms(page), "filtered_query": _ms(filtered)},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))


def _sign_in_as_demo_user(state: dict[str, Any]) -> None:
    global _SIGN_IN
    _SIGN_IN = lambda: auth_headers(state)  # noqa: E731
    authorize(_SIGN_IN)
