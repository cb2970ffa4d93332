"""Driving the live loop on the local cloud, as a market would: shared by `make demo`, the end-to-end test and
the loop benchmark.

A base model is trained on the history (backfill + a refit job) and named champion; then each streamed day is
replayed snapshot by snapshot (`closecast replay`'s code) with its revealed targets after the close, and the
loop runs by itself: the streaming predictor predicts every snapshot with the champion, the ingest sees the
day's targets complete and starts the daily chain, which stores the day, updates the champion, evaluates and
promotes or keeps. The driver waits for the day's chain to end before the next day opens, as the real market
leaves a night between two auctions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from closecast.market.schema import KAGGLE_COLUMNS, SECONDS_STEP, SNAPSHOTS_PER_DAY
from closecast_tools.local.http import call


class LoopError(RuntimeError):
    pass


def shift_dates(frame: pd.DataFrame, first: int) -> pd.DataFrame:
    """The market with its date_ids moved to start at `first` (time_id and row_id follow)."""
    out = frame.copy()
    out["date_id"] = out["date_id"].astype("int64") - int(out["date_id"].min()) + first
    out["time_id"] = out["date_id"] * SNAPSHOTS_PER_DAY + out["seconds_in_bucket"] // SECONDS_STEP
    out["row_id"] = (
        out["date_id"].astype(str)
        + "_"
        + out["seconds_in_bucket"].astype(str)
        + "_"
        + out["stock_id"].astype(str)
    )
    return out


def wait_job(api: str, job_id: str, timeout_s: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, job = call("GET", f"{api}/jobs/{job_id}")
        if status != 200:
            raise LoopError(f"GET /jobs/{job_id} answered {status}: {job}")
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        if time.monotonic() > deadline:
            raise LoopError(f"job {job_id} still {job['status']} after {timeout_s:.0f} s")
        time.sleep(0.3)


def post_job(api: str, body: dict[str, Any], timeout_s: float = 900) -> dict[str, Any]:
    status, job = call("POST", f"{api}/jobs/", body)
    if status != 202:
        raise LoopError(f"POST /jobs/ {body} answered {status}: {job}")
    return wait_job(api, job["id"], timeout_s)


def train_base(
    cloud_state: dict[str, Any],
    state_file: Path,
    history: pd.DataFrame,
    model_name: str,
    work: Path,
    train_days: int | None = None,
) -> dict[str, Any]:
    """Backfill `history` (database + day store), refit through POST /jobs/ (on its first `train_days` days, or
    all), name the model champion."""
    from closecast_tools.backfill import backfill, local_target

    api = cloud_state["api_url"]
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "history.csv"
    history[list(KAGGLE_COLUMNS)].to_csv(csv, index=False)
    backfill(csv, local_target(state_file), progress=False)
    first, last = int(history["date_id"].min()), int(history["date_id"].max())
    if train_days is not None:
        last = min(last, first + train_days - 1)
    job = post_job(
        api, {"kind": "train", "model_name": model_name, "start_date_id": first, "end_date_id": last}
    )
    if job["status"] != "succeeded":
        raise LoopError(f"the base model's training failed: {job['error']}")
    model_id = int(job["result"]["model_id"])
    status, promotion = call("PUT", f"{api}/models/{model_id}/champion", {"reason": "base model"})
    if status != 200:
        raise LoopError(f"PUT /models/{model_id}/champion answered {status}: {promotion}")
    return {"model_id": model_id, "job": job, "promotion": promotion}


def chain_job(api: str, date_id: int) -> dict[str, Any] | None:
    status, page = call("GET", f"{api}/jobs/?kind=daily&page_size=1000")
    if status != 200:
        raise LoopError(f"GET /jobs/ answered {status}: {page}")
    for job in page["data"]:
        if job["params"].get("date_id") == date_id:
            return dict(job)
    return None


def wait_chain(api: str, date_id: int, timeout_s: float = 900) -> dict[str, Any]:
    """The day's chain job once it has ended (it is started by the ingest when the targets are complete)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = chain_job(api, date_id)
        if job is not None and job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.5)
    raise LoopError(f"no finished daily chain for day {date_id} after {timeout_s:.0f} s")


def count_predictions(api: str, date_id: int) -> int:
    status, page = call("GET", f"{api}/predictions/?date_id={date_id}&page_size=1")
    if status != 200:
        raise LoopError(f"GET /predictions/ answered {status}: {page}")
    return int(page["total_results"])


def wait_predictions(api: str, date_id: int, expected: int, timeout_s: float = 300) -> int:
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        n = count_predictions(api, date_id)
        if n >= expected:
            return n
        time.sleep(0.3)
    return n


def wait_until(condition: Callable[[], bool], timeout_s: float = 120, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise LoopError(f"{what} did not hold after {timeout_s:.0f} s")
        time.sleep(0.3)


def revealed(api: Any, date_id: int) -> int:
    """How many revealed targets the database holds for the day."""
    rows = api.execute("SELECT count(*) AS n FROM revealed_target WHERE date_id = :d", {"d": date_id}).records
    return int(rows[0]["n"])


def replay_day(cloud_state: dict[str, Any], day: pd.DataFrame, reveal_targets: bool = True) -> Any:
    """One day onto the snapshot stream (`closecast replay --shape envelope --speed max [--reveal-targets]`)."""
    from closecast_tools.local.cloud import client
    from closecast_tools.market.replay import ReplayOptions, replay

    return replay(
        [day[list(KAGGLE_COLUMNS)]],
        client("kinesis", cloud_state["aws_endpoint_url"]),
        cloud_state["stream_name"],
        ReplayOptions(shape="envelope", reveal_targets=reveal_targets, progress=False),
    )


@dataclass
class DayOutcome:
    date_id: int
    rows: int
    predictions: int
    replay_seconds: float
    chain: dict[str, Any]
    chain_seconds: float


@dataclass
class LoopRun:
    base: dict[str, Any]
    days: list[DayOutcome] = field(default_factory=list)


def stream_days(
    cloud_state: dict[str, Any],
    days: list[pd.DataFrame],
    *,
    on_day: Callable[[DayOutcome], Any] | None = None,
    timeout_s: float = 900,
) -> list[DayOutcome]:
    """Replay each day with its revealed targets, wait for all its live predictions, then for its chain."""
    api = cloud_state["api_url"]
    outcomes = []
    for day in days:
        date_id = int(day["date_id"].to_numpy()[0])
        started = time.perf_counter()
        replay_day(cloud_state, day)
        replayed = time.perf_counter() - started
        predicted = wait_predictions(api, date_id, len(day), timeout_s)
        chain = wait_chain(api, date_id, timeout_s)
        outcome = DayOutcome(date_id, len(day), predicted, replayed, chain, time.perf_counter() - started)
        outcomes.append(outcome)
        if on_day:
            on_day(outcome)
    return outcomes


def day_predictions(api: Any, date_id: int) -> pd.DataFrame:
    """The live predictions of a day (every model) with the rows' targets, through the Data API: two plain
    queries joined here (the join in SQL, re-run for every page, could outlast the statement timeout once the
    tables held a few weeks)."""
    predictions = pd.DataFrame(
        api.query(
            "SELECT model_id, seconds_in_bucket, stock_id, value, partial FROM prediction WHERE date_id = :date_id "
            "ORDER BY model_id, seconds_in_bucket, stock_id",
            {"date_id": date_id},
            page_size=5000,
        ),
        columns=["model_id", "seconds_in_bucket", "stock_id", "value", "partial"],
    )
    targets = pd.DataFrame(
        api.query(
            "SELECT seconds_in_bucket, stock_id, target FROM stock_data_with_target WHERE date_id = :date_id "
            "ORDER BY seconds_in_bucket, stock_id",
            {"date_id": date_id},
            page_size=5000,
        ),
        columns=["seconds_in_bucket", "stock_id", "target"],
    )
    return predictions.merge(targets, on=["seconds_in_bucket", "stock_id"], how="left", sort=False)


def data_api_of(cloud_state: dict[str, Any]) -> Any:
    """A Data API client on the local cloud's database (what the functions use)."""
    import boto3

    from closecast.db.data_api import DataApi
    from closecast_tools.local.cloud import CREDENTIALS, REGION

    rds = boto3.client(
        "rds-data", endpoint_url=cloud_state["data_api_endpoint_url"], region_name=REGION, **CREDENTIALS
    )
    return DataApi(rds, cloud_state["db_cluster_arn"], cloud_state["db_secret_arn"], cloud_state["database"])


def load_model(cloud_state: dict[str, Any], model_id: int) -> Any:
    from closecast_ml.live import s3_loader
    from closecast_tools.local.cloud import client

    status, page = call("GET", f"{cloud_state['api_url']}/models/?page_size=1000")
    if status != 200:
        raise LoopError(f"GET /models/ answered {status}")
    record = next(m for m in page["data"] if m["id"] == model_id)
    return s3_loader(client("s3", cloud_state["aws_endpoint_url"]))(record)


def compare_day(cloud_state: dict[str, Any], api: Any, day: pd.DataFrame) -> list[dict[str, Any]]:
    """For each model that predicted the day live: the live MAE, the batch MAE of the same model on the same rows
    (the model loaded from S3, the whole day's features at once), and the largest difference of a prediction."""
    date_id = int(day["date_id"].to_numpy()[0])
    live = day_predictions(api, date_id)
    keyed = day.set_index(["seconds_in_bucket", "stock_id"]).sort_index()
    out = []
    for key, group in live.groupby("model_id"):
        model_id = int(str(key))
        model = load_model(cloud_state, model_id)
        batch = pd.Series(
            model.predict(day.drop(columns=[c for c in ("target", "oracle") if c in day]), center=True),
            index=pd.MultiIndex.from_frame(day[["seconds_in_bucket", "stock_id"]]),
        ).sort_index()
        index = pd.MultiIndex.from_frame(group[["seconds_in_bucket", "stock_id"]])
        live_values = group["value"].to_numpy(dtype=np.float64)
        batch_values = batch.reindex(index).to_numpy(dtype=np.float64)
        target = keyed["target"].reindex(index).to_numpy(dtype=np.float64)
        entry: dict[str, Any] = {
            "date_id": date_id,
            "model_id": model_id,
            "rows": len(group),
            "partial": int(group["partial"].sum()),
            "live_mae": float(np.mean(np.abs(live_values - target))),
            "batch_mae": float(np.mean(np.abs(batch_values - target))),
            "zero_mae": float(np.mean(np.abs(target))),
            "max_abs_difference": float(np.max(np.abs(live_values - batch_values))),
        }
        if "oracle" in keyed:
            entry["oracle_mae"] = float(np.mean(np.abs(keyed["oracle"].reindex(index).to_numpy() - target)))
        out.append(entry)
    return out
