"""Market data benchmarks: generating the full synthetic market, and replaying onto a local Kinesis stream.

`run()` returns a dict (collected into benchmarks/results.json by the benchmark runner):
* generate_full: 481 days x 200 stocks written as Parquet in a child process - seconds, peak RSS (MB),
  rows, and the calibration of what was written (oracle MAE / zero MAE, target std);
* replay: rows/s onto a 2-shard stream of moto in server mode (loopback HTTP), row and envelope shapes.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAYS = 481
SEED = 1
REPLAY_DAYS = 3

_CHILD = """
import json, resource, sys, time
from closecast_tools.market.generate import write_dataset
started = time.perf_counter()
summary = write_dataset(sys.argv[1], days=int(sys.argv[2]), seed=int(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - started, "rows": summary.rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_generate(out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out), str(DAYS), str(SEED)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    child = json.loads(result.stdout.strip().splitlines()[-1])
    children_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    import pyarrow.parquet as pq

    table = pq.read_table(out / "train.parquet", columns=["target"]).to_pandas()
    oracle = pq.read_table(out / "oracle.parquet", columns=["oracle"]).to_pandas()
    target, prediction = table["target"], oracle["oracle"]
    return {
        "days": DAYS,
        "stocks": 200,
        "seed": SEED,
        "rows": child["rows"],
        "seconds": round(child["seconds"], 2),
        "seconds_with_interpreter_start": round(wall, 2),
        "peak_rss_mb": round(max(child["peak_rss_mb"], 0.0), 1),
        "peak_rss_children_mb": round(children_peak_mb, 1),
        "oracle_mae_over_zero_mae": round(float((target - prediction).abs().mean() / target.abs().mean()), 4),
        "target_std_bps": round(float(target.std()), 3),
        "cpus": os.cpu_count(),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_replay(directory: Path) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    from closecast_tools.market.generate import write_dataset
    from closecast_tools.market.replay import ReplayOptions, open_source, replay

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    write_dataset(directory, days=REPLAY_DAYS, seed=SEED)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    results: dict[str, Any] = {
        "days": REPLAY_DAYS,
        "stocks": 200,
        "shards": 2,
        "target": "moto server (loopback)",
    }
    try:
        client = boto3.client(
            "kinesis",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        for shape in ("row", "envelope"):
            stream = f"bench-{shape}"
            client.create_stream(StreamName=stream, ShardCount=2)
            client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1})
            frames, total = open_source([directory])
            summary = replay(
                frames, client, stream, ReplayOptions(shape=shape, progress=False, total_rows=total)
            )
            results[shape] = {
                "rows": summary.rows,
                "records": summary.records,
                "batches": summary.batches,
                "seconds": round(summary.elapsed, 2),
                "rows_per_second": round(summary.rows_per_second),
            }
    finally:
        server.stop()
    return results


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        generate = bench_generate(Path(scratch) / "full")
        replay_rates = bench_replay(Path(scratch) / "replay")
    return {"generate_full_market": generate, "replay_local_kinesis": replay_rates}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
