"""Data API layer benchmark: the closecast client through the local Data API endpoint over the embedded
PostgreSQL (loopback HTTP, real boto3 client).

`run()` returns a dict (collected into benchmarks/results.json by the benchmark runner):
* batch_insert: rows/s of `DataApi.batch_execute` inserting stock_data rows (split under 4 MiB), with
  botocore's parameter validation on (the default) and off;
* paged_read: rows/s of `DataApi.query` reading them back in pages under 1 MiB, and the largest response;
* point_query: median latency of a one-row SELECT by primary key.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from closecast.db.data_api import DataApi
from closecast.db.migrations import apply_migrations
from closecast_tools.local.data_api import LocalDataApi
from closecast_tools.local.postgres import start_embedded

ROWS = 33_000  # three days of the full market (200 stocks x 55 snapshots x 3)
CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:closecast-bench"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:closecast-bench"
DATABASE = "closecast"

COLUMNS = (
    "stock_id, date_id, seconds_in_bucket, imbalance_size, imbalance_buy_sell_flag, reference_price, "
    "matched_size, far_price, near_price, bid_price, bid_size, ask_price, ask_size, wap, target, time_id, row_id"
)
INSERT = (
    f"INSERT INTO stock_data ({COLUMNS}) VALUES ({', '.join(':' + c.strip() for c in COLUMNS.split(','))})"
)


def _row(i: int, date_offset: int) -> dict[str, Any]:
    stock_id, step = i % 200, (i // 200) % 55
    date_id = date_offset + i // 11_000
    return {
        "stock_id": stock_id,
        "date_id": date_id,
        "seconds_in_bucket": step * 10,
        "imbalance_size": 3_753_451.43 + i,
        "imbalance_buy_sell_flag": (-1, 0, 1)[i % 3],
        "reference_price": 0.999875,
        "matched_size": 11_548_975.43,
        "far_price": None if step < 30 else 1.000123,
        "near_price": None if step < 30 else 1.000456,
        "bid_price": 0.999875,
        "bid_size": 22_940.0,
        "ask_price": 1.00005,
        "ask_size": 9_177.6,
        "wap": 1.0,
        "target": -3.029704 + i * 1e-6,
        "time_id": date_id * 55 + step,
        "row_id": f"{date_id}_{step * 10}_{stock_id}",
    }


def _client(url: str, *, validate: bool) -> Any:
    return boto3.client(
        "rds-data",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate, read_timeout=300),
    )


def run() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="closecast-bench-data-api-"))
    server = start_embedded(root / "pgdata")
    try:
        dsn = server.ensure_database(DATABASE)
        with LocalDataApi(dsn, cluster_arn=CLUSTER, secret_arn=SECRET, database=DATABASE) as local:
            result: dict[str, Any] = {"rows": ROWS}
            for validate, date_offset in ((True, 0), (False, 10)):
                client = _client(local.url, validate=validate)
                api = DataApi(client, CLUSTER, SECRET, DATABASE)
                apply_migrations(api)
                rows = [_row(i, date_offset) for i in range(ROWS)]
                calls: list[int] = []

                def record(request: Any, _calls: list[int] = calls, **_: Any) -> None:
                    _calls.append(len(request.body))

                client.meta.events.register("before-send.rds-data.BatchExecuteStatement", record)
                started = time.perf_counter()
                api.batch_execute(INSERT, rows)
                seconds = time.perf_counter() - started
                key = "batch_insert" if validate else "batch_insert_no_validation"
                result[key] = {
                    "rows_per_s": round(ROWS / seconds),
                    "seconds": round(seconds, 2),
                    "calls": len(calls),
                    "largest_request_bytes": max(calls),
                }

            client = _client(local.url, validate=True)
            api = DataApi(client, CLUSTER, SECRET, DATABASE)
            sizes: list[int] = []
            client.meta.events.register(
                "after-call.rds-data.ExecuteStatement",
                lambda http_response, **_: sizes.append(len(http_response.content)),
            )
            started = time.perf_counter()
            back = api.query(
                f"SELECT {COLUMNS} FROM stock_data WHERE date_id < 10 ORDER BY date_id, seconds_in_bucket, stock_id"
            )
            seconds = time.perf_counter() - started
            assert len(back) == ROWS, len(back)
            result["paged_read"] = {
                "rows_per_s": round(ROWS / seconds),
                "seconds": round(seconds, 2),
                "pages": len(sizes),
                "largest_response_bytes": max(sizes),
            }

            latencies = []
            for i in range(200):
                started = time.perf_counter()
                api.execute(
                    "SELECT * FROM stock_data WHERE date_id = 0 AND seconds_in_bucket = :s AND stock_id = :id",
                    {"s": (i % 55) * 10, "id": i % 200},
                )
                latencies.append(time.perf_counter() - started)
            result["point_query"] = {"median_ms": round(statistics.median(latencies) * 1000, 2)}
            return result
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
