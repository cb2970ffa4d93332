"""Local cloud: start time (fresh and on an existing state directory) and the time from PutRecords to the row
being visible through the HTTP API (p50/p99 over 20 tries)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_tools.local.cloud import CloudOptions, LocalCloud, auth_headers, client, repo_root
from closecast_tools.market.generate import generate_frame
from closecast_tools.market.replay import ReplayOptions, replay

TRIES = 20
HEADERS: dict[str, str] = {}  # the demo user's token: reads go through the JWT authorizer as on AWS


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _total(url: str) -> int:
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS), timeout=30) as response:
        return int(json.loads(response.read())["total_results"])


def _wait_total(url: str, expected: int, timeout_s: float = 300, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout_s
    while _total(url) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{url}: fewer than {expected} rows after {timeout_s} s (see the logs and quarantine)"
            )
        time.sleep(interval)


def _row(date_id: int, stock_id: int) -> dict[str, Any]:
    return {
        "stock_id": stock_id,
        "date_id": date_id,
        "seconds_in_bucket": 0,
        "imbalance_size": 1e6,
        "imbalance_buy_sell_flag": 1,
        "reference_price": 1.0,
        "matched_size": 1e7,
        "far_price": None,
        "near_price": None,
        "bid_price": 0.9999,
        "bid_size": 2e4,
        "ask_price": 1.0001,
        "ask_size": 2e4,
        "wap": 1.0,
    }


def _ingest_throughput(cloud: LocalCloud, kinesis: Any, api: str) -> dict[str, Any]:
    """Two synthetic days (22,000 rows) replayed as envelopes; time until the API sees every row."""
    frame = generate_frame(days=2, seed=11)
    frame = frame.assign(date_id=frame["date_id"].astype("int64") + 8000)
    frame = frame.assign(
        time_id=frame["date_id"] * 55 + frame["seconds_in_bucket"] // 10,
        row_id=frame["date_id"].astype(str)
        + "_"
        + frame["seconds_in_bucket"].astype(str)
        + "_"
        + frame["stock_id"].astype(str),
    )
    frame = frame[[c for c in KAGGLE_COLUMNS if c in frame.columns]]
    began = time.perf_counter()
    summary = replay(
        [frame], kinesis, cloud.state["stream_name"], ReplayOptions(shape="envelope", progress=False)
    )
    put_done = time.perf_counter() - began
    _wait_total(f"{api}/stock_data/?date_id_from=8000&date_id_to=8001&page_size=1", len(frame), interval=0.05)
    elapsed = time.perf_counter() - began
    return {
        "rows": len(frame),
        "records": summary.records,
        "put_seconds": round(put_done, 3),
        "visible_seconds": round(elapsed, 3),
        "rows_per_second": round(len(frame) / elapsed),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        options = CloudOptions(root=repo_root(), state_dir=state)
        started = time.perf_counter()
        cloud = LocalCloud(options).start()
        fresh = time.perf_counter() - started
        cloud.stop()
        started = time.perf_counter()
        cloud = LocalCloud(CloudOptions(root=repo_root(), state_dir=state)).start()
        restart = time.perf_counter() - started
        try:
            HEADERS.update(auth_headers(cloud.state))
            kinesis = client("kinesis", cloud.state["aws_endpoint_url"])
            api = cloud.state["api_url"]
            # one untimed round trip, so the ingest and API functions are warm as in steady state
            kinesis.put_record(
                StreamName=cloud.state["stream_name"],
                Data=json.dumps(_row(9000, 0)).encode(),
                PartitionKey="0",
            )
            _wait_total(f"{api}/stock_data/?date_id=9000", 1)
            latencies = []
            for i in range(TRIES):
                date_id = 9001 + i
                began = time.perf_counter()
                kinesis.put_records(
                    StreamName=cloud.state["stream_name"],
                    Records=[{"Data": json.dumps(_row(date_id, 7)).encode(), "PartitionKey": "7"}],
                )
                _wait_total(f"{api}/stock_data/?date_id={date_id}", 1)
                latencies.append(time.perf_counter() - began)
            ingest = _ingest_throughput(cloud, kinesis, api)
        finally:
            cloud.stop()
    return {
        "start_fresh_seconds": round(fresh, 3),
        "start_existing_state_seconds": round(restart, 3),
        "put_to_api_visible_seconds": {
            "tries": TRIES,
            "p50": round(statistics.median(latencies), 4),
            "p99": round(_percentile(latencies, 0.99), 4),
            "max": round(max(latencies), 4),
            "note": "includes the ingest mapping's 1 s batching window from template.yaml",
        },
        "ingest_envelopes_end_to_end": ingest,
    }
