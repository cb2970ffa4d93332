"""Walk-forward backtest: train on the first K days, then for each next day predict it, score it, update.

Side by side:
* `daily`  - the production policy: each day the guarded daily update (`training.update` on a window of recent
             days), and the scheduled refit from scratch when `training.refit_due` says so;
* `frozen` - the first model, never updated;
* `refit`  - refit from scratch on all earlier days every `refit_every` days (the costly reference);
* `seed`   - the seed project's configuration and loop: 29 features, squared error, eta 0.01, 50 rounds, then
             50 more rounds on each new day alone;
* `zero` and `oracle` (the synthetic market's exact conditional expectation, when the data has it).

`captured = (zero - model) / (zero - oracle)`: the share of the gap between predicting zero and the best
possible prediction that a model closes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from closecast_ml import training
from closecast_ml.dataset import read_dataset, split_days
from closecast_ml.model import ModelArtifact

MODELS: tuple[str, ...] = ("daily", "frozen", "refit", "seed")
DEFAULT_REFIT_EVERY = 10

Progress = Callable[[int], Any]


def _mae(errors: list[np.ndarray]) -> float:
    joined = np.concatenate(errors) if errors else np.zeros(0)
    return float(np.mean(joined)) if len(joined) else float("nan")


def _captured(zero: float, model: float, oracle: float | None) -> float | None:
    if oracle is None or not math.isfinite(oracle) or zero - oracle <= 0:
        return None
    return (zero - model) / (zero - oracle)


def run_backtest(
    data: str | Path | Sequence[str | Path] | pd.DataFrame,
    *,
    train_days: int,
    refit_every: int = DEFAULT_REFIT_EVERY,
    feature_set: str = "full",
    models: Sequence[str] = MODELS,
    walk_days: int | None = None,
    window_days: int = training.DEFAULT_UPDATE_WINDOW,
    progress: Callable[[int], Any] | None = None,
    on_start: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """The backtest's figures: `{"models": {name: {"mae", "captured", "update_seconds"}}, "zero": {"mae"},
    "oracle": {"mae"}, "days": [{"date_id", name: mae, ..., "zero", "oracle"}]}`. `update_seconds` is the
    mean time a model's update took per walked day (refit: its refits spread over the days)."""
    frame = data if isinstance(data, pd.DataFrame) else read_dataset(data, with_oracle=True)
    days = list(split_days(frame.sort_values(["date_id", "seconds_in_bucket", "stock_id"], kind="stable")))
    if train_days < 1 or train_days >= len(days):
        raise ValueError(f"--train-days must be in 1..{len(days) - 1} for {len(days)} days of data")
    walk = days[train_days : train_days + walk_days if walk_days else None]
    history = pd.concat(days[:train_days], ignore_index=True)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    has_oracle = "oracle" in frame and bool(np.isfinite(frame["oracle"].to_numpy(dtype=np.float64)).any())

    current: dict[str, ModelArtifact] = {}
    seconds: dict[str, float] = {m: 0.0 for m in models}
    if on_start:
        on_start(len(walk))
    base = training.fit(history, feature_set=feature_set)
    for name in ("daily", "frozen", "refit"):
        if name in models:
            current[name] = base
    if "seed" in models:
        current["seed"] = training.fit(history, feature_set="seed", valid_days=0)

    errors: dict[str, list[np.ndarray]] = {name: [] for name in (*models, "zero", "oracle")}
    per_day: list[dict[str, Any]] = []
    for index, day in enumerate(walk):
        known = np.isfinite(day["target"].to_numpy(dtype=np.float64))
        labelled = day[known]
        target = labelled["target"].to_numpy(dtype=np.float64)
        row: dict[str, Any] = {"date_id": int(day["date_id"].iat[0])}
        for name in models:
            # the whole day predicted and centred at each second (as the live loop and inference jobs do), then
            # scored on the rows whose target is known
            error = np.abs(current[name].predict(day, center=True)[known] - target)
            errors[name].append(error)
            row[name] = float(error.mean()) if len(error) else None
        errors["zero"].append(np.abs(target))
        row["zero"] = float(np.abs(target).mean()) if len(target) else None
        if has_oracle:
            error = np.abs(labelled["oracle"].to_numpy(dtype=np.float64) - target)
            errors["oracle"].append(error)
            row["oracle"] = float(error.mean()) if len(error) else None
        per_day.append(row)

        # learn the day just scored (nothing to learn for after the last day)
        position = train_days + index
        last = index + 1 == len(walk)
        refit_wanted = "refit" in models and (index + 1) % refit_every == 0 and not last
        daily_refit = "daily" in models and not last and training.refit_due(current["daily"], row["date_id"])
        if refit_wanted or daily_refit:  # one fit from scratch on all days so far, shared by both
            started = time.perf_counter()
            fresh = training.fit(pd.concat(days[: position + 1], ignore_index=True), feature_set=feature_set)
            spent = time.perf_counter() - started
            if refit_wanted:
                current["refit"] = fresh
                seconds["refit"] += spent
            if daily_refit:
                current["daily"] = fresh
                seconds["daily"] += spent
                row["daily_action"] = "refit"
        if "daily" in models and not last and not daily_refit:
            # the production policy: the guarded daily update (the scheduled refit above when it is due)
            started = time.perf_counter()
            window = pd.concat(days[max(0, position + 1 - window_days) : position + 1], ignore_index=True)
            result = training.update(current["daily"], window)
            current["daily"] = result.model
            seconds["daily"] += time.perf_counter() - started
            row["daily_action"] = "kept parent" if result.kept_parent else "updated"
        if "seed" in models and not last:
            started = time.perf_counter()
            current["seed"] = training.seed_update(current["seed"], day)
            seconds["seed"] += time.perf_counter() - started
        if progress:
            progress(1)

    zero = _mae(errors["zero"])
    oracle = _mae(errors["oracle"]) if has_oracle else None
    result_models: dict[str, dict[str, Any]] = {}
    for name in models:
        mae = _mae(errors[name])
        result_models[name] = {
            "mae": mae,
            "captured": _captured(zero, mae, oracle),
            "update_seconds": seconds[name] / len(walk) if walk else 0.0,
        }
    return {
        "models": result_models,
        "zero": {"mae": zero},
        "oracle": {"mae": oracle},
        "days": per_day,
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a terminal table: one line per model, then zero and oracle."""
    lines = [f"{'model':<8} {'MAE':>8} {'captured':>9} {'update s/day':>13}"]
    for name, figures in result["models"].items():
        captured = figures["captured"]
        lines.append(
            f"{name:<8} {figures['mae']:>8.4f} {'' if captured is None else f'{captured:.3f}':>9}"
            f" {figures['update_seconds']:>13.3f}"
        )
    lines.append(f"{'zero':<8} {result['zero']['mae']:>8.4f}")
    if result["oracle"]["mae"] is not None:
        lines.append(f"{'oracle':<8} {result['oracle']['mae']:>8.4f}")
    return "\n".join(lines)


def write_png(result: dict[str, Any], path: str | Path) -> Path:
    """A PNG of each model's MAE per walked day (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = result["days"]
    dates = [day["date_id"] for day in days]
    figure, axis = plt.subplots(figsize=(10, 5), dpi=100)
    names = [*result["models"], "zero", *(["oracle"] if result["oracle"]["mae"] is not None else [])]
    for name in names:
        values = [np.nan if day.get(name) is None else day[name] for day in days]
        style = "--" if name in ("zero", "oracle") else "-"
        axis.plot(dates, values, style, marker="." if len(dates) < 60 else None, label=name)
    axis.set_xlabel("date_id")
    axis.set_ylabel("MAE (bps)")
    axis.set_title("Walk-forward backtest: MAE per day")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    plt.close(figure)
    return out


__all__ = ["DEFAULT_REFIT_EVERY", "MODELS", "format_table", "run_backtest", "write_png"]
