"""The live loop on the local cloud, end to end: a base model trained on 20 synthetic days (backfill + a refit
job) and named champion; then 4 more days replayed at full speed with their revealed targets after each day.
Nothing else is asked of the system: it predicts every snapshot live, starts each day's chain when the targets
are complete, updates, evaluates, promotes or keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from closecast_tools.local import loop
from closecast_tools.local.http import call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRST = 3000  # date_ids of this test's market (apart from the other tests' days)
BASE_DAYS, STREAMED_DAYS, STOCKS = 20, 4, 20
MODEL = "closecast"  # the template's ChampionModelName


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    from closecast_tools.market.generate import generate_frame

    return loop.shift_dates(generate_frame(BASE_DAYS + STREAMED_DAYS, seed=5, n_stocks=STOCKS), FIRST)


@pytest.fixture(scope="module")
def run(local_cloud: Any, market: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Given the base model as champion, when the 4 days are replayed one after the other, then (returned) each
    day's outcome and, per day and model, the live against the batch figures."""
    state = local_cloud.state
    history = market[market["date_id"] < FIRST + BASE_DAYS]
    base = loop.train_base(
        state, local_cloud.options.state_dir / "local.json", history, MODEL, tmp_path_factory.mktemp("loop")
    )
    days = [d for _, d in market[market["date_id"] >= FIRST + BASE_DAYS].groupby("date_id", sort=True)]
    outcomes = loop.stream_days(state, days, timeout_s=600)
    api = loop.data_api_of(state)
    comparisons = [c for day in days for c in loop.compare_day(state, api, day)]
    return {"base": base, "outcomes": outcomes, "comparisons": comparisons, "days": days}


def test_every_streamed_row_has_a_live_prediction(run: dict[str, Any]) -> None:
    """Then GET /predictions/ counts one prediction for every row of every streamed day, none partial."""
    for outcome in run["outcomes"]:
        assert outcome.predictions == outcome.rows, outcome
    assert sum(c["partial"] for c in run["comparisons"]) == 0


def test_each_day_starts_one_chain_that_runs_every_step(local_cloud: Any, run: dict[str, Any]) -> None:
    """Then each day has exactly one daily chain, started by its targets, succeeded, whose store_day, train and
    promote steps are jobs of their own that succeeded; the next-day inference is left to the live predictor."""
    api = local_cloud.state["api_url"]
    status, page = call("GET", f"{api}/jobs/?kind=daily&page_size=1000")
    assert status == 200
    for outcome in run["outcomes"]:
        chains = [j for j in page["data"] if j["params"]["date_id"] == outcome.date_id]
        assert len(chains) == 1
        chain = chains[0]
        assert chain["status"] == "succeeded", chain["error"]
        steps = chain["result"]["steps"]
        for kind in ("store_day", "train", "promote"):
            status, step = call("GET", f"{api}/jobs/{steps[kind]['job_id']}")
            assert status == 200 and step["kind"] == kind and step["status"] == "succeeded"
        assert "skipped" in steps["inference"]


def test_the_loop_promotes_by_itself_and_records_why(local_cloud: Any, run: dict[str, Any]) -> None:
    """Then /promotions/ holds the base model's manual promotion and one rule decision per streamed day, each
    with its evidence; at least one updated model was promoted, and /champions/ names the last one promoted."""
    api = local_cloud.state["api_url"]
    status, page = call("GET", f"{api}/promotions/?name={MODEL}&page_size=1000")
    assert status == 200
    decisions = [p for p in page["data"] if p["decided_by"] == "rule"]
    streamed = {o.date_id for o in run["outcomes"]}
    assert sorted(p["date_id"] for p in decisions if p["date_id"] in streamed) == sorted(streamed)
    promoted = [p for p in decisions if p["decision"] == "promoted" and p["date_id"] in streamed]
    assert promoted, decisions
    for p in promoted:
        evidence = p["evidence"]
        assert evidence["guard_candidate_mae"] <= evidence["guard_champion_mae"]
    status, champions = call("GET", f"{api}/champions/")
    (champion,) = [c for c in champions["data"] if c["name"] == MODEL]
    assert champion["model_id"] == max(promoted, key=lambda p: p["id"])["model_id"]


def test_live_mae_equals_the_batch_mae_of_the_same_model_and_day(local_cloud: Any, run: dict[str, Any]) -> None:
    """Then for each streamed day and the model that predicted it live, every live prediction equals the same
    model's whole-day prediction to 1e-9, so the live MAE equals the batch MAE; and the inference job of that
    model on that day (the batch path through the day store) reports the same MAE."""
    api = local_cloud.state["api_url"]
    for c in run["comparisons"]:
        assert c["max_abs_difference"] <= 1e-9, c
        assert abs(c["live_mae"] - c["batch_mae"]) <= 1e-9, c
    first = run["comparisons"][0]
    job = loop.post_job(api, {"kind": "inference", "model_id": first["model_id"], "date_id": first["date_id"]})
    assert job["status"] == "succeeded", job["error"]
    assert first["rows"] == job["result"]["n_rows"]
    assert abs(job["result"]["mae"] - first["live_mae"]) <= 1e-9


def test_predictions_are_served_with_filters_and_the_page_envelope(local_cloud: Any, run: dict[str, Any]) -> None:
    """Then GET /predictions/ filters by date_id, seconds_in_bucket, stock_id and model_id in the page envelope,
    and refuses an unknown parameter with a 400 naming it."""
    api = local_cloud.state["api_url"]
    c = run["comparisons"][-1]
    status, page = call(
        "GET",
        f"{api}/predictions/?date_id={c['date_id']}&seconds_in_bucket=540&stock_id=3&model_id={c['model_id']}",
    )
    assert status == 200 and page["total_results"] == 1
    (row,) = page["data"]
    assert row["row_id"] == f"{c['date_id']}_540_3" and row["partial"] is False
    status, body = call("GET", f"{api}/predictions/?colour=red")
    assert status == 400 and body["errors"][0]["field"] == "colour"


def test_live_predictions_reach_the_output_stream(local_cloud: Any, run: dict[str, Any]) -> None:
    """Then the predictions stream holds one record per predicted snapshot, with a value for each of its rows."""
    import json

    from closecast_tools.local.cloud import client

    kinesis = client("kinesis", local_cloud.state["aws_endpoint_url"])
    name = local_cloud.state["prediction_stream_name"]
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    seen: dict[tuple[int, int], int] = {}
    for _ in range(200):
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for record in response["Records"]:
            message = json.loads(record["Data"])
            if message["date_id"] >= FIRST + BASE_DAYS:
                seen[(message["date_id"], message["seconds_in_bucket"])] = len(message["predictions"])
        iterator = response["NextShardIterator"]
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            break
    assert len(seen) == STREAMED_DAYS * 55
    assert sum(seen.values()) == sum(len(day) for day in run["days"])
