"""ML benchmarks (`python -m benchmarks.run ml ml_history ml_backtest`, or `make bench`):

* history: full-history training on 481 synthetic days, the `full` model vs the seed's configuration (29
  features, squared error, eta 0.01, 50 rounds, no recency weights), each in its own child process: seconds
  (read + features + train), peak RSS, rows trained (`full` samples the days older than 3 half-lives in
  proportion to their weight); goal: full <= 2.5x seed and <= 6 GB. Skipped with CLOSECAST_BENCH_QUICK=1 (a
  few minutes on 2 cores);
* daily_update: one `training.update` on a 10-day window (goal <= 3 s);
* inference_day: `ModelArtifact.predict` for one day of 200 stocks, features included (goal <= 0.2 s);
* snapshot: features + prediction of one 200-stock snapshot through `SnapshotFeaturizer` (goal <= 3 ms);
* backtest: `closecast backtest` figures on seed 7, 120 days, train 80 (goals: daily >= 0.90 captured, within
  0.01 of refit, beats frozen);
* kaggle_example: the real example files: train on date 478 (its revealed targets), predict 479, MAE beside
  predicting zero.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HISTORY_DAYS = 481
HISTORY_SEED = 1
BACKTEST = {"days": 120, "seed": 7, "train_days": 80}
SERVING_TRAIN_DAYS = 30  # the model the update/inference/snapshot timings use (its size: early stopping)
EXAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kaggle-example"

_CHILD = """
import json, resource, sys, time
from closecast_ml.dataset import read_dataset
from closecast_ml import training
started = time.perf_counter()
rows = read_dataset(sys.argv[1], with_oracle=False)
read = time.perf_counter() - started
feature_set = sys.argv[2]
model = training.fit(rows, feature_set=feature_set, valid_days=0 if feature_set == "seed" else None)
print(json.dumps({"seconds": time.perf_counter() - started, "read_seconds": read, "rows": len(rows),
                  "rows_trained": model.metadata["rows_trained"],
                  "sample_weight_floor": model.metadata.get("sample_weight_floor"),
                  "rounds": model.n_rounds, "valid_metrics": model.metadata["valid_metrics"],
                  "cpu_seconds": resource.getrusage(resource.RUSAGE_SELF).ru_utime
                                 + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _generate(out: Path, days: int, seed: int) -> None:
    from closecast_tools.market.generate import write_dataset

    write_dataset(out, days=days, seed=seed)


def bench_history(work: Path) -> dict[str, Any]:
    data = work / "history"
    started = time.perf_counter()
    _generate(data, HISTORY_DAYS, HISTORY_SEED)
    result: dict[str, Any] = {
        "days": HISTORY_DAYS,
        "seed": HISTORY_SEED,
        "generate_seconds": time.perf_counter() - started,
    }
    for feature_set in ("seed", "full"):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(data), feature_set], capture_output=True, text=True, check=True
        )
        result[feature_set] = json.loads(done.stdout.strip().splitlines()[-1])
    result["full_over_seed"] = result["full"]["seconds"] / result["seed"]["seconds"]
    # CPU seconds too: on a shared machine the wall-clock ratio depends on what else runs meanwhile
    result["full_over_seed_cpu"] = result["full"]["cpu_seconds"] / result["seed"]["cpu_seconds"]
    result["goals"] = {
        "full_within_2_5x_seed": result["full_over_seed"] <= 2.5,
        "full_peak_under_6gb": result["full"]["peak_rss_mb"] <= 6 * 1024,
    }
    return result


def _median_seconds(action: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_serving(data: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from closecast_ml import training
    from closecast_ml.dataset import read_dataset, split_days
    from closecast_ml.features import SnapshotFeaturizer

    days = list(split_days(read_dataset(data, date_range=(0, SERVING_TRAIN_DAYS + 2), with_oracle=False)))
    started = time.perf_counter()
    model = training.fit(pd.concat(days[:SERVING_TRAIN_DAYS], ignore_index=True))
    fit_seconds = time.perf_counter() - started
    window = pd.concat(days[SERVING_TRAIN_DAYS - 9 : SERVING_TRAIN_DAYS + 1], ignore_index=True)
    results: list[Any] = []
    update_seconds = _median_seconds(lambda: results.append(training.update(model, window)), 3)
    day = days[SERVING_TRAIN_DAYS + 1].drop(columns=["target"])
    inference = _median_seconds(lambda: model.predict(day), 7)

    snapshots = [group for _, group in day.groupby("seconds_in_bucket", sort=True)]
    per_snapshot = []
    for _ in range(3):
        featurizer = SnapshotFeaturizer(model.feature_set, model.stats)
        for snapshot in snapshots:
            started = time.perf_counter()
            model.predict_matrix(featurizer.add_matrix(snapshot))
            per_snapshot.append(time.perf_counter() - started)
    features_only = []
    featurizer = SnapshotFeaturizer(model.feature_set, model.stats)
    for snapshot in snapshots:
        started = time.perf_counter()
        featurizer.add_matrix(snapshot)
        features_only.append(time.perf_counter() - started)
    return {
        "fit_days": SERVING_TRAIN_DAYS,
        "fit_seconds": fit_seconds,
        "model_rounds": model.n_rounds,
        "daily_update": {
            "window_days": 10,
            "seconds": update_seconds,
            "kept_parent": results[0].kept_parent,
            "goal_under_3s": update_seconds <= 3.0,
        },
        "inference_day": {"rows": len(day), "seconds": inference, "goal_under_0_2s": inference <= 0.2},
        "snapshot": {
            "stocks": int(np.median([len(s) for s in snapshots])),
            "ms_median": 1000 * statistics.median(per_snapshot),
            "ms_p95": 1000 * float(np.percentile(per_snapshot, 95)),
            "features_only_ms_median": 1000 * statistics.median(features_only),
            "goal_under_3ms": statistics.median(per_snapshot) <= 0.003,
        },
    }


def bench_backtest(data: Path) -> dict[str, Any]:
    from closecast_ml.backtest import format_table, run_backtest

    started = time.perf_counter()
    result = run_backtest(data, train_days=BACKTEST["train_days"])
    print(format_table(result), flush=True)
    models = result["models"]
    return {
        **BACKTEST,
        "seconds": time.perf_counter() - started,
        "models": models,
        "zero": result["zero"],
        "oracle": result["oracle"],
        "goals": {
            "daily_captures_0_90": models["daily"]["captured"] >= 0.90,
            "daily_within_0_01_of_refit": models["daily"]["captured"] >= models["refit"]["captured"] - 0.01,
            "daily_beats_frozen": models["daily"]["mae"] < models["frozen"]["mae"],
        },
    }


def bench_kaggle_example() -> dict[str, Any]:
    import numpy as np

    from closecast_ml import training
    from closecast_ml.kaggle import load_test

    if not (EXAMPLE / "test.csv").is_file():
        return {"skipped": f"no example files at {EXAMPLE}"}
    rows = load_test(EXAMPLE / "test.csv", EXAMPLE / "revealed_targets.csv")
    train, test = rows[rows["date_id"] == 478], rows[rows["date_id"] == 479]
    test = test[np.isfinite(test["target"].to_numpy())]
    out: dict[str, Any] = {"train_date_id": 478, "predict_date_id": 479, "rows": len(test)}
    out["zero_mae"] = float(np.abs(test["target"]).mean())
    for feature_set in ("full", "seed"):
        model = training.fit(train, feature_set=feature_set, valid_days=0)
        for center in (False, True):
            mae = float(np.abs(model.predict(test, center=center) - test["target"].to_numpy()).mean())
            out[f"{feature_set}{'_centred' if center else ''}_mae"] = mae
    return out


def run() -> dict[str, Any]:
    """Serving figures and the real example files (the history and the backtest: bench_ml_history.py,
    bench_ml_backtest.py, so that each can be re-measured alone)."""
    with tempfile.TemporaryDirectory(prefix="closecast-bench-ml-") as tmp:
        market = Path(tmp) / "market"
        _generate(market, BACKTEST["days"], BACKTEST["seed"])
        result: dict[str, Any] = {"kaggle_example": bench_kaggle_example()}
        result |= bench_serving(market)
    return result


def run_history() -> dict[str, Any]:
    if os.environ.get("CLOSECAST_BENCH_QUICK") == "1":
        return {"skipped": "CLOSECAST_BENCH_QUICK=1"}
    with tempfile.TemporaryDirectory(prefix="closecast-bench-ml-") as tmp:
        return bench_history(Path(tmp))


def run_backtest() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="closecast-bench-ml-") as tmp:
        market = Path(tmp) / "market"
        _generate(market, BACKTEST["days"], BACKTEST["seed"])
        return bench_backtest(market)
