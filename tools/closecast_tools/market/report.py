"""`closecast market-report`: what a market teaches - reference models scored against zero and the oracle.

Three XGBoost models (hist, fixed parameters, MAE objective) on a small fixed set of hand features, trained on
the first `train_days` days of a generated market and scored on the rest:

  (a) current row    features of the row alone (and its deviation from the other stocks at that second), frozen
  (b) with history   (a) plus lags, changes and returns of the same stock-day's earlier snapshots, frozen
  (c) refitted       (b)'s features, refitted every `refit_every` days on all the days before, each weighted
                     by its recency (half of the weight every `half_life` days)

Each is scored by the captured fraction of the gap between predicting zero and the oracle,
(zero_mae - model_mae) / (zero_mae - oracle_mae). Every prediction is centred first (its index-weighted mean at
each second removed), as the targets are. Optionally model (b) is also scored on real Kaggle days (features from
test.csv, targets from revealed_targets.csv) beside predicting zero: does what the market teaches carry over?

These features and models are the report's own, deliberately simple and fixed, so that the numbers measure
the market, not a modelling effort.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from closecast.market.schema import SECONDS_STEP, SNAPSHOTS_PER_DAY
from closecast_ml.targets import BPS, load_index_weights

XGB_PARAMS: dict[str, Any] = {
    "objective": "reg:absoluteerror",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 50,
    "max_bin": 64,
    "nthread": 2,
    "seed": 0,
}
ROUNDS = 100
LAGS = (1, 3, 6)


@dataclass
class Features:
    frame: pd.DataFrame  # one row per input row, same order
    current: list[str]
    history: list[str]


class _Cubes:
    """Rows scattered into (days, 55, stocks) cubes, and gathered back."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.days, _ = pd.factorize(frame["date_id"].to_numpy(), sort=True)
        self.steps = frame["seconds_in_bucket"].to_numpy(dtype=np.int64) // SECONDS_STEP
        self.stocks = frame["stock_id"].to_numpy(dtype=np.int64)
        self.shape = (int(self.days.max()) + 1, SNAPSHOTS_PER_DAY, int(self.stocks.max()) + 1)
        self.frame = frame
        weights = load_index_weights().to_numpy()
        vector = np.zeros(self.shape[2])
        vector[: min(len(weights), self.shape[2])] = weights[: self.shape[2]]
        self.weights = vector
        self.present = ~np.isnan(self.cube("wap"))

    def cube(self, column: str | np.ndarray) -> np.ndarray:
        values = self.frame[column].to_numpy(dtype=np.float64) if isinstance(column, str) else column
        out = np.full(self.shape, np.nan)
        out[self.days, self.steps, self.stocks] = values
        return out

    def rows(self, cube: np.ndarray) -> np.ndarray:
        return cube[self.days, self.steps, self.stocks]

    def across(self, cube: np.ndarray) -> np.ndarray:
        """cube minus its index-weighted mean over the stocks with a value at that second."""
        has = ~np.isnan(cube)
        w = np.where(has, self.weights, 0.0)
        total = w.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (np.where(has, cube, 0.0) * w).sum(axis=-1, keepdims=True) / total
        return cube - mean


def _lag(cube: np.ndarray, steps: int) -> np.ndarray:
    out = np.full_like(cube, np.nan)
    out[:, steps:] = cube[:, :-steps]
    return out


def build_features(frame: pd.DataFrame) -> Features:
    """The report's hand features for Kaggle rows (any order; rows of a stock-day read only earlier rows)."""
    c = _Cubes(frame)
    bid, ask, wap, ref = c.cube("bid_price"), c.cube("ask_price"), c.cube("wap"), c.cube("reference_price")
    bid_size, ask_size = c.cube("bid_size"), c.cube("ask_size")
    mid = (bid + ask) / 2
    z = c.cube("imbalance_buy_sell_flag") * c.cube("imbalance_size") / c.cube("matched_size")
    with np.errstate(invalid="ignore", divide="ignore"):
        book = (bid_size - ask_size) / (bid_size + ask_size)
        position = np.clip((ref - bid) / (ask - bid), -2.0, 3.0)
    current = {
        "seconds": c.cube(c.frame["seconds_in_bucket"].to_numpy(dtype=np.float64)),
        "book": book,
        "wap_mid": (wap / mid - 1) * BPS,
        "ref_wap": (ref / wap - 1) * BPS,
        "ref_position": position,
        "spread": (ask - bid) / wap * BPS,
        "imbalance": z,
        "near_ref": np.clip((c.cube("near_price") / ref - 1) * BPS, -500, 500),
        "far_ref": np.clip((c.cube("far_price") / ref - 1) * BPS, -1000, 1000),
    }
    for name in ("book", "wap_mid", "ref_wap", "imbalance"):
        current[f"{name}_x"] = c.across(current[name])
    log_wap = np.log(wap) * BPS
    history: dict[str, np.ndarray] = {}
    for lag in LAGS:
        ret = log_wap - _lag(log_wap, lag)
        history[f"ret{lag}"] = ret
        history[f"ret{lag}_x"] = c.across(ret)
        history[f"dz{lag}"] = z - _lag(z, lag)
    history["day_move_x"] = c.across(log_wap - log_wap[:, :1])
    history["dref3"] = (np.log(ref) - _lag(np.log(ref), 3)) * BPS
    earlier = np.stack([_lag(position, k) for k in range(1, 7)])
    seen = (~np.isnan(earlier)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        history["position_mean6"] = np.where(seen > 0, np.nansum(earlier, axis=0) / seen, np.nan)
    step_ret = np.nan_to_num(log_wap - _lag(log_wap, 1))
    counts = np.maximum(np.arange(SNAPSHOTS_PER_DAY), 1)[None, :, None]
    history["realised_vol"] = np.sqrt(np.cumsum(step_ret**2, axis=1) / counts)
    columns = {name: c.rows(cube) for name, cube in {**current, **history}.items()}
    return Features(pd.DataFrame(columns, index=frame.index), list(current), list(history))


def centred(frame: pd.DataFrame, prediction: np.ndarray) -> np.ndarray:
    """prediction minus its index-weighted mean over the stocks of the same second (targets sum to ~0 so)."""
    c = _Cubes(frame)
    return c.rows(c.across(c.cube(prediction)))


def fit(
    features: pd.DataFrame, target: pd.Series, columns: list[str], weight: np.ndarray | None = None
) -> Any:
    import xgboost as xgb

    usable = target.notna().to_numpy()
    matrix = xgb.DMatrix(
        features.loc[usable, columns],
        label=target[usable],
        weight=None if weight is None else weight[usable],
    )
    return xgb.train(XGB_PARAMS, matrix, num_boost_round=ROUNDS)


def predict(model: Any, features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    import xgboost as xgb

    return np.asarray(model.predict(xgb.DMatrix(features[columns])), dtype=np.float64)


def _mae(target: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.mean(np.abs(target - prediction)))


@dataclass
class Report:
    data: str
    train_days: int
    test_days: int
    refit_every: int
    half_life: float
    zero_mae: float = 0.0
    oracle_mae: float = 0.0
    models: dict[str, dict[str, float]] = field(default_factory=dict)
    differences: dict[str, float] = field(default_factory=dict)
    real: dict[str, Any] | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _score(name: str, report: Report, target: np.ndarray, prediction: np.ndarray) -> None:
    mae = _mae(target, prediction)
    gap = report.zero_mae - report.oracle_mae
    report.models[name] = {"mae": round(mae, 4), "captured": round((report.zero_mae - mae) / gap, 4)}


def market_report(
    data: str | Path,
    *,
    train_days: int = 80,
    refit_every: int = 10,
    half_life: float = 20.0,
    real: str | Path | None = None,
) -> Report:
    """Fit and score the reference models on a generated market directory (see the module's doc)."""
    from closecast_ml.dataset import read_dataset

    started = time.perf_counter()
    frame = read_dataset(data, with_oracle=True)
    if "oracle" not in frame.columns:
        raise ValueError(f"{data}: not a generated market (no oracle)")
    frame = frame.dropna(subset=["target"]).reset_index(drop=True)
    dates = np.sort(frame["date_id"].unique())
    if not 0 < train_days < len(dates):
        raise ValueError(f"--train-days {train_days}: the market has {len(dates)} days; need fewer")
    first_test = int(dates[train_days])
    features = build_features(frame)
    test = (frame["date_id"] >= first_test).to_numpy()
    train = ~test
    target = frame["target"]
    test_target = target[test].to_numpy()
    report = Report(str(data), train_days, len(dates) - train_days, refit_every, half_life)
    report.zero_mae = round(_mae(test_target, 0.0 * test_target), 4)
    report.oracle_mae = round(_mae(test_target, frame.loc[test, "oracle"].to_numpy()), 4)
    with_history = features.current + features.history
    test_frame = frame[test]
    models = {}
    for name, columns in (("current_row", features.current), ("with_history", with_history)):
        model = fit(features.frame[train], target[train], columns)
        models[name] = model
        raw = predict(model, features.frame[test], columns)
        _score(name, report, test_target, centred(test_frame, raw))
    refitted = np.empty(int(test.sum()))
    test_dates = frame.loc[test, "date_id"].to_numpy()
    for start in range(0, len(dates) - train_days, refit_every):
        first, last = (
            int(dates[train_days + start]),
            int(dates[min(len(dates), train_days + start + refit_every) - 1]),
        )
        rows = (frame["date_id"] < first).to_numpy()
        age = first - frame.loc[rows, "date_id"].to_numpy(dtype=np.float64)
        model = fit(features.frame[rows], target[rows], with_history, 0.5 ** (age / half_life))
        chosen = (test_dates >= first) & (test_dates <= last)
        refitted[chosen] = predict(model, features.frame[test][chosen], with_history)
    _score("with_history_refitted", report, test_target, centred(test_frame, refitted))
    captured = {name: values["captured"] for name, values in report.models.items()}
    report.differences = {
        "history_minus_current": round(captured["with_history"] - captured["current_row"], 4),
        "refitted_minus_frozen": round(captured["with_history_refitted"] - captured["with_history"], 4),
    }
    if real is not None:
        report.real = score_real(real, models["with_history"], with_history)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def score_real(real: str | Path, model: Any, columns: list[str]) -> dict[str, Any]:
    """MAE of `model` on the real Kaggle days that have targets, beside predicting zero, per day and overall."""
    from closecast_ml.dataset import read_dataset

    frame = read_dataset(real).reset_index(drop=True)
    features = build_features(frame)
    prediction = centred(frame, predict(model, features.frame, columns))
    labelled = frame["target"].notna().to_numpy()
    out: dict[str, Any] = {"source": str(real), "days": {}}
    for day in sorted(frame.loc[labelled, "date_id"].unique()):
        rows = labelled & (frame["date_id"] == day).to_numpy()
        y = frame.loc[rows, "target"].to_numpy()
        out["days"][int(day)] = {
            "rows": int(rows.sum()),
            "zero_mae": round(_mae(y, 0.0 * y), 4),
            "model_mae": round(_mae(y, prediction[rows]), 4),
        }
    y = frame.loc[labelled, "target"].to_numpy()
    out["zero_mae"] = round(_mae(y, 0.0 * y), 4)
    out["model_mae"] = round(_mae(y, prediction[labelled]), 4)
    return out


def format_report(report: Report) -> str:
    lines = [
        f"market {report.data}: trained on {report.train_days} days, scored on the next {report.test_days}",
        f"  zero MAE {report.zero_mae:.4f}   oracle MAE {report.oracle_mae:.4f}"
        f"   (oracle / zero {report.oracle_mae / report.zero_mae:.3f})",
    ]
    labels = {
        "current_row": "(a) current row, frozen",
        "with_history": "(b) with history, frozen",
        "with_history_refitted": f"(c) with history, refitted every {report.refit_every} days",
    }
    for name, values in report.models.items():
        lines.append(f"  {labels[name]:<44} MAE {values['mae']:.4f}  captured {values['captured']:.3f}")
    lines.append(
        f"  history adds {report.differences['history_minus_current']:+.3f},"
        f" refitting adds {report.differences['refitted_minus_frozen']:+.3f}"
        f" (refits weigh each earlier day by 0.5^(age / {report.half_life:g} days))"
    )
    if report.real is not None:
        for day, values in report.real["days"].items():
            lines.append(
                f"  real day {day}: model (b) MAE {values['model_mae']:.4f} vs zero {values['zero_mae']:.4f}"
            )
        lines.append(
            f"  real days together: model (b) MAE {report.real['model_mae']:.4f}"
            f" vs zero {report.real['zero_mae']:.4f}"
        )
    return "\n".join(lines)


def write_json(report: Report, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
