"""The demo behind `make demo`: synthetic auction snapshots onto the local Kinesis stream, through the ingest
function into PostgreSQL, and back out through the HTTP API; one bad record shows the quarantine."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import IO, Any

import pandas as pd

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_tools.local.cloud import LocalCloud, auth_headers, client
from closecast_tools.market.generate import generate_frame
from closecast_tools.market.replay import ReplayOptions, replay


def sample_frame(n: int, seed: int = 7) -> pd.DataFrame:
    """The first `n` snapshot rows of a synthetic day, in time order."""
    frame = generate_frame(days=1, seed=seed)
    frame = frame.sort_values(["date_id", "seconds_in_bucket", "stock_id"]).head(n)
    return frame[[c for c in KAGGLE_COLUMNS if c in frame.columns]].reset_index(drop=True)


def get_json(url: str, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local gateway URL
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local gateway URL
        body: dict[str, Any] = json.loads(response.read())
        return body


def run_demo(cloud: LocalCloud, rows: int, out: IO[str], timeout_s: float = 120.0) -> dict[str, Any]:
    state = cloud.state
    data = sample_frame(rows)
    date_id = int(data["date_id"].iloc[0])
    kinesis = client("kinesis", state["aws_endpoint_url"])
    print(
        f"putting {len(data)} snapshot rows on stream {state['stream_name']} (one row per record)", file=out
    )
    started = time.perf_counter()
    sent = replay([data], kinesis, state["stream_name"], ReplayOptions(shape="row", progress=False))
    print(f"  {sent.text()}", file=out)
    bad = {"stock_id": 1, "date_id": date_id, "seconds_in_bucket": 15, "imbalance_buy_sell_flag": 2}
    kinesis.put_record(StreamName=state["stream_name"], Data=b"not json at all", PartitionKey="bad")
    kinesis.put_record(StreamName=state["stream_name"], Data=json.dumps(bad).encode(), PartitionKey="bad")

    url = f"{state['api_url']}/stock_data/?date_id={date_id}&page_size=1000"
    deadline = time.monotonic() + timeout_s
    body = get_json(url, auth_headers(state))
    while body["total_results"] < len(data) and time.monotonic() < deadline:
        time.sleep(0.2)
        body = get_json(url, auth_headers(state))
    elapsed = time.perf_counter() - started
    signed_in = f" (as {state['demo_user']['username']})" if state.get("auth") else ""
    print(f"GET {url}{signed_in}", file=out)
    print(
        f"  -> total_results={body['total_results']} total_pages={body['total_pages']} page={body['page']} "
        f"page_size={body['page_size']} ({elapsed:.1f}s after PutRecords)",
        file=out,
    )
    frame = pd.DataFrame(body["data"])
    if not frame.empty:
        shown = [
            "row_id",
            "imbalance_size",
            "imbalance_buy_sell_flag",
            "reference_price",
            "bid_price",
            "ask_price",
            "wap",
            "target",
        ]
        print(frame[shown].head(8).to_string(index=False), file=out)
    s3 = client("s3", state["aws_endpoint_url"])
    quarantined: list[str] = []
    while len(quarantined) < 2 and time.monotonic() < deadline:
        listing = s3.list_objects_v2(Bucket=state["bucket"], Prefix="quarantine/")
        quarantined = [o["Key"] for o in listing.get("Contents", [])]
        if len(quarantined) < 2:
            time.sleep(0.2)
    print(f"quarantined bad records: {len(quarantined)}", file=out)
    for key in quarantined:
        document = json.loads(s3.get_object(Bucket=state["bucket"], Key=key)["Body"].read())
        detail = "; ".join(
            f"{e['field']}: {e['message']}" for r in document["rejections"] for e in r["errors"]
        )
        print(
            f"  s3://{state['bucket']}/{key}: {document['reason']}{' (' + detail + ')' if detail else ''}",
            file=out,
        )
    ok = body["total_results"] == len(data)
    print("demo ok" if ok else "demo FAILED: not every row came back", file=out, flush=True)
    return {
        "rows": len(data),
        "returned": body["total_results"],
        "quarantined": len(quarantined),
        "seconds": elapsed,
        "ok": ok,
    }
