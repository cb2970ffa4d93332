"""The live loop on the local cloud: a base model trained on 80 synthetic days (200 stocks), then 20 more days
replayed with their revealed targets after each day, the loop running by itself.

Measured:
- latency: PutRecords of one snapshot (an envelope of its 200 rows) -> all its predictions visible through
  GET /predictions/ (p50, p99), snapshot after snapshot on the first `LATENCY_DAYS` streamed days (the mapping's
  1 s batching window included);
- compute: features + prediction per 200-stock snapshot in the predictor (in process, no I/O);
- the daily chain's wall time (the chain job's created -> finished, and targets sent -> chain finished);
- quality over the 20 days: the live MAE (every row predicted by the champion of the moment) against predicting
  zero and the oracle (captured fraction), the frozen base model's, and the ML package's walk-forward backtest
  (`daily` = the same update rule in process) per day; and the largest |live - batch| over all rows.

Sizes from the environment (defaults: the issue's run): BENCH_LIVE_BASE_DAYS=80, BENCH_LIVE_DAYS=20,
BENCH_LIVE_STOCKS=200, BENCH_LIVE_LATENCY_DAYS=2.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_tools.local import loop
from closecast_tools.local.cloud import CloudOptions, LocalCloud, auth_headers, client, repo_root
from closecast_tools.local.http import authorize
from closecast_tools.market.replay import rows_as_dicts

MODEL = "closecast"

# the demo user's Authorization header once a cloud is up: reads go through the JWT check as on AWS
_SIGN_IN: Callable[[], dict[str, str]] = dict


def _env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _total(url: str) -> int:
    with urllib.request.urlopen(urllib.request.Request(url, headers=_SIGN_IN()), timeout=30) as response:
        return int(json.loads(response.read())["total_results"])


def _timed_day(state: dict[str, Any], day: pd.DataFrame) -> list[float]:
    """Each snapshot put alone; seconds until all its rows' predictions are served."""
    from closecast_tools.market.replay import snapshot_records, target_records

    kinesis = client("kinesis", state["aws_endpoint_url"])
    api = state["api_url"]
    latencies = []
    for second, snapshot in day.groupby("seconds_in_bucket", sort=True):
        records = snapshot_records(snapshot[list(KAGGLE_COLUMNS)], "envelope", with_target=False)
        url = f"{api}/predictions/?date_id={int(snapshot['date_id'].iat[0])}&seconds_in_bucket={second}&page_size=1"
        started = time.perf_counter()
        kinesis.put_records(
            StreamName=state["stream_name"],
            Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in records],
        )
        deadline = started + 60
        while _total(url) < len(snapshot):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"snapshot {second} not predicted after 60 s")
            time.sleep(0.01)
        latencies.append(time.perf_counter() - started)
    for record in target_records(day):
        kinesis.put_record(
            StreamName=state["stream_name"], Data=record.data, PartitionKey=record.partition_key
        )
    return latencies


def _compute_per_snapshot(model: Any, day: pd.DataFrame) -> dict[str, Any]:
    from closecast.ingest import StreamRecord
    from closecast_ml.live import Champion, LivePredictor

    class Fixed:
        current = Champion(1, model)

        def get(self) -> Champion:
            return self.current

    predictor = LivePredictor(None, Fixed())  # type: ignore[arg-type]
    frames = []
    for n, (_, snap) in enumerate(day.groupby("seconds_in_bucket", sort=True)):
        rows = rows_as_dicts(snap, with_target=False)  # full precision, as `closecast replay` sends them
        frames.extend(
            predictor.snapshots_of([StreamRecord(str(n), "p", json.dumps({"data": rows}).encode())])
        )
    times = []
    for frame in frames:
        started = time.perf_counter()
        predictor.predict([frame])
        times.append((time.perf_counter() - started) * 1000)
    return {
        "stocks": int(day["stock_id"].nunique()),
        "snapshots": len(times),
        "ms_mean": round(statistics.fmean(times), 3),
        "ms_p50": round(_percentile(times, 0.5), 3),
        "ms_p99": round(_percentile(times, 0.99), 3),
        "features_ms_mean": round(predictor.timings["features"] * 1000 / len(times), 3),
        "model_ms_mean": round(predictor.timings["predict"] * 1000 / len(times), 3),
    }


def _seconds_between(a: str, b: str) -> float:
    return (dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds()


def run() -> dict[str, Any]:
    from closecast_ml.backtest import run_backtest
    from closecast_tools.market.generate import generate_frame

    base_days = _env("BENCH_LIVE_BASE_DAYS", 80)
    n_days = _env("BENCH_LIVE_DAYS", 20)
    stocks = _env("BENCH_LIVE_STOCKS", 200)
    latency_days = _env("BENCH_LIVE_LATENCY_DAYS", 2)
    market = generate_frame(base_days + n_days, seed=3, n_stocks=stocks)
    history = market[market["date_id"] < base_days]
    days = [d.reset_index(drop=True) for _, d in market[market["date_id"] >= base_days].groupby("date_id")]
    with tempfile.TemporaryDirectory() as tmp:
        cloud = LocalCloud(
            CloudOptions(root=repo_root(), state_dir=Path(tmp) / "state", schedules=False)
        ).start()
        _sign_in_as_demo_user(cloud.state)
        try:
            state = cloud.state
            started = time.perf_counter()
            base = loop.train_base(
                state, Path(tmp) / "state" / "local.json", history, MODEL, Path(tmp) / "work"
            )
            base_seconds = time.perf_counter() - started
            base_model = loop.load_model(state, base["model_id"])
            latencies: list[float] = []
            chains: list[dict[str, Any]] = []
            for index, day in enumerate(days):
                date_id = int(day["date_id"].iat[0])
                started = time.perf_counter()
                if index < latency_days:
                    latencies.extend(_timed_day(state, day))
                    predicted = loop.count_predictions(state["api_url"], date_id)
                else:
                    loop.replay_day(state, day)
                    predicted = loop.wait_predictions(state["api_url"], date_id, len(day))
                sent = time.perf_counter()
                chain = loop.wait_chain(state["api_url"], date_id, timeout_s=1200)
                chains.append(
                    {
                        "date_id": date_id,
                        "rows": len(day),
                        "predicted": predicted,
                        "status": chain["status"],
                        "error": chain["error"],
                        "decision": ((chain.get("result") or {}).get("steps") or {})
                        .get("promote", {})
                        .get("decision"),
                        "chain_job_seconds": round(
                            _seconds_between(chain["created_at"], chain["finished_at"]), 2
                        ),
                        "stream_to_chain_end_seconds": round(time.perf_counter() - sent, 2),
                        "day_seconds": round(time.perf_counter() - started, 2),
                    }
                )
                print(json.dumps(chains[-1]), flush=True)
            api = loop.data_api_of(state)
            comparisons = [c for day in days for c in loop.compare_day(state, api, day)]
        finally:
            cloud.stop()
    # quality over the streamed days
    labelled = pd.concat(days, ignore_index=True)
    target = labelled["target"].to_numpy(dtype=np.float64)
    frozen = np.abs(
        base_model.predict(labelled.drop(columns=["target", "oracle"]), center=True) - target
    ).mean()
    rows = sum(c["rows"] for c in comparisons)
    live = sum(c["live_mae"] * c["rows"] for c in comparisons) / rows
    zero = sum(c["zero_mae"] * c["rows"] for c in comparisons) / rows
    oracle = sum(c["oracle_mae"] * c["rows"] for c in comparisons) / rows

    def captured(mae: float) -> float:
        return round((zero - mae) / (zero - oracle), 4)

    backtest = run_backtest(market, train_days=base_days, models=("daily", "frozen"), walk_days=n_days)
    live_by_day = {}
    for c in comparisons:
        live_by_day.setdefault(c["date_id"], []).append(c)
    per_day = []
    for row in backtest["days"]:
        entries = live_by_day.get(row["date_id"], [])
        n = sum(e["rows"] for e in entries) or 1
        day_live = sum(e["live_mae"] * e["rows"] for e in entries) / n
        per_day.append(
            {
                "date_id": row["date_id"],
                "models": [e["model_id"] for e in entries],
                "live_mae": round(day_live, 6),
                "backtest_daily_mae": round(row["daily"], 6),
                "frozen_mae": round(row["frozen"], 6),
                "zero_mae": round(row["zero"], 6),
            }
        )
    chain_seconds = [c["chain_job_seconds"] for c in chains]
    return {
        "base_days": base_days,
        "streamed_days": n_days,
        "stocks": stocks,
        "base_model_seconds": round(base_seconds, 1),
        "latency_put_to_visible_seconds": {
            "snapshots": len(latencies),
            "p50": round(_percentile(latencies, 0.5), 3),
            "p99": round(_percentile(latencies, 0.99), 3),
            "max": round(max(latencies), 3),
        }
        if latencies
        else None,
        "compute_per_snapshot": _compute_per_snapshot(base_model, days[-1]),
        "chain_wall_seconds": {
            "p50": round(_percentile(chain_seconds, 0.5), 2),
            "max": round(max(chain_seconds), 2),
        },
        "chains": chains,
        "promoted_days": sum(c["decision"] == "promoted" for c in chains),
        "every_row_predicted": all(c["predicted"] >= c["rows"] for c in chains),
        "live_vs_batch_max_abs_difference": max(c["max_abs_difference"] for c in comparisons),
        "live_vs_batch_max_mae_difference": max(abs(c["live_mae"] - c["batch_mae"]) for c in comparisons),
        "quality": {
            "live_mae": round(live, 6),
            "frozen_mae": round(float(frozen), 6),
            "zero_mae": round(zero, 6),
            "oracle_mae": round(oracle, 6),
            "live_captured": captured(live),
            "frozen_captured": captured(float(frozen)),
            "backtest_daily_captured": backtest["models"]["daily"]["captured"],
            "backtest_frozen_captured": backtest["models"]["frozen"]["captured"],
        },
        "per_day": per_day,
    }


def _sign_in_as_demo_user(state: dict[str, Any]) -> None:
    global _SIGN_IN
    _SIGN_IN = lambda: auth_headers(state)  # noqa: E731
    authorize(_SIGN_IN)
