"""Day store and backfill on the local cloud: reading 481 days (5.2 M rows, the size of Kaggle's train.csv) from
the day store as training does, and `closecast backfill` rows/s through the Data API bulk path."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAYS = 481
BACKFILL_DAYS = 20

READER = """
import json, resource, sys, time
from pathlib import Path
from closecast_ml.daystore import DayStore
from closecast_tools.backfill import local_target
target = local_target(Path(sys.argv[1]))
store = DayStore(target.api, target.s3, target.bucket)
started = time.perf_counter()
frame = store.read_days(store.stored(0, int(sys.argv[2]) - 1))
seconds = time.perf_counter() - started
print(json.dumps({"rows": len(frame), "days": int(frame["date_id"].nunique()), "seconds": round(seconds, 2),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def run() -> dict[str, Any]:
    from closecast import day_store as book
    from closecast_ml.daystore import DayStore
    from closecast_tools.backfill import backfill, local_target
    from closecast_tools.local.cloud import CloudOptions, LocalCloud, repo_root
    from closecast_tools.market.generate import generate_frame, write_dataset

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        cloud = LocalCloud(
            CloudOptions(root=repo_root(), state_dir=Path(tmp) / "state", pollers=False)
        ).start()
        try:
            target = local_target(Path(tmp) / "state" / "local.json")
            write_dataset(Path(tmp) / "market", days=BACKFILL_DAYS, seed=3)
            report = backfill(Path(tmp) / "market", target, progress=False)

            store = DayStore(target.api, target.s3, target.bucket)
            frame = generate_frame(days=DAYS, seed=7)
            started = time.perf_counter()
            for date_id, day in frame.groupby("date_id", sort=True):
                source = book.DaySource(int(date_id), len(day), len(day), f"bench:{date_id}")  # type: ignore[call-overload]
                store.put_day(day, source)
            write_seconds = time.perf_counter() - started
            rows = len(frame)
            del frame
            # read in a fresh process, as a training function would: its time and peak memory alone
            done = subprocess.run(
                [sys.executable, "-c", READER, str(Path(tmp) / "state" / "local.json"), str(DAYS)],
                capture_output=True,
                text=True,
                timeout=1200,
                check=True,
            )
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            assert measured["rows"] == rows and measured["days"] == DAYS
            stored_bytes = sum(
                o["Size"]
                for page in target.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=target.bucket, Prefix="days/"
                )
                for o in page.get("Contents", [])
            )
        finally:
            cloud.stop()
    return {
        "backfill": {
            "days": report.days,
            "rows": report.rows,
            "seconds": round(report.seconds, 2),
            "rows_per_second": round(report.rows_per_second),
            "path": "Data API, one JSON-array statement per day + Parquet to the day store",
        },
        "day_store_read": {
            "days": DAYS,
            "rows": rows,
            "seconds": measured["seconds"],
            "rows_per_second": round(rows / measured["seconds"]),
            "stored_mib": round(stored_bytes / 2**20, 1),
            "reader_peak_rss_mib": measured["peak_rss_mib"],
            "write_seconds": round(write_seconds, 1),
        },
    }
