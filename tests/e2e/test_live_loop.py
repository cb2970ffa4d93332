"""The live loop on the local cloud, end to end: 20 synthetic days backfilled, a deliberately weak base model
(a refit job on the first 3 of them) named champion; then 3 more days replayed at full speed with their revealed targets after each day.
Nothing else is asked of the system: it predicts every snapshot live, starts each day's chain when the targets
are complete, updates, evaluates, promotes or keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from closecast_ml import training
from closecast_tools.local import loop
from closecast_tools.local.http import call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

FIRST = 3000  # date_ids of this test's market (apart from the other tests' days)
BASE_DAYS, STREAMED_DAYS, STOCKS = 20, 3, 20
BASE_TRAIN_DAYS = 3  # of the BASE_DAYS stored: a deliberately weak base
FAULT_DAYS = 3  # after the streamed days: missing rows, day store down, database down
MODEL = "closecast"  # the template's ChampionModelName


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    from closecast_tools.market.generate import generate_frame

    return loop.shift_dates(
        generate_frame(BASE_DAYS + STREAMED_DAYS + FAULT_DAYS, seed=5, n_stocks=STOCKS), FIRST
    )


@pytest.fixture(scope="module")
def run(local_cloud: Any, market: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Given the base model as champion, when the 3 days are replayed one after the other, then (returned) each
    day's outcome and, per day and model, the live against the batch figures."""
    state = local_cloud.state
    history = market[market["date_id"] < FIRST + BASE_DAYS]
    # the base model sees only the history's first 3 days (all 20 are stored): its fit from scratch is then 18
    # days old on the first streamed day, so that day's chain runs the scheduled refit (training.refit_due) on
    # every stored day and promotes it; the next days are daily updates of it, promoted or kept by the guard
    base = loop.train_base(
        state,
        local_cloud.options.state_dir / "local.json",
        history,
        MODEL,
        tmp_path_factory.mktemp("loop"),
        train_days=BASE_TRAIN_DAYS,
    )
    streamed = market[
        (market["date_id"] >= FIRST + BASE_DAYS) & (market["date_id"] < FIRST + BASE_DAYS + STREAMED_DAYS)
    ]
    days = [d for _, d in streamed.groupby("date_id", sort=True)]
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
    with its evidence; at least one new model (the scheduled refit or an update) was promoted, and /champions/
    names the last one promoted."""
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
        if "valid_mae" in evidence:  # the scheduled refit (the weak base's last fit is 18 days old on day 1)
            assert evidence["valid_mae"] < evidence["valid_zero_mae"]
        else:
            assert evidence["guard_candidate_mae"] <= evidence["guard_champion_mae"] * (1 - training.MIN_GAIN)
    status, champions = call("GET", f"{api}/champions/")
    (champion,) = [c for c in champions["data"] if c["name"] == MODEL]
    assert champion["model_id"] == max(promoted, key=lambda p: p["id"])["model_id"]


def test_live_mae_equals_the_batch_mae_of_the_same_model_and_day(
    local_cloud: Any, run: dict[str, Any]
) -> None:
    """Then for each streamed day and the model that predicted it live, every live prediction equals the same
    model's whole-day prediction to 1e-9, so the live MAE equals the batch MAE; and the inference job of that
    model on that day (the batch path through the day store) reports the same MAE."""
    api = local_cloud.state["api_url"]
    for c in run["comparisons"]:
        assert c["max_abs_difference"] <= 1e-9, c
        assert abs(c["live_mae"] - c["batch_mae"]) <= 1e-9, c
    first = run["comparisons"][0]
    job = loop.post_job(
        api, {"kind": "inference", "model_id": first["model_id"], "date_id": first["date_id"]}
    )
    assert job["status"] == "succeeded", job["error"]
    assert first["rows"] == job["result"]["n_rows"]
    assert abs(job["result"]["mae"] - first["live_mae"]) <= 1e-9


def test_predictions_are_served_with_filters_and_the_page_envelope(
    local_cloud: Any, run: dict[str, Any]
) -> None:
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
            if FIRST + BASE_DAYS <= message["date_id"] < FIRST + BASE_DAYS + STREAMED_DAYS:
                seen[(message["date_id"], message["seconds_in_bucket"])] = len(message["predictions"])
        iterator = response["NextShardIterator"]
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            break
    assert len(seen) == STREAMED_DAYS * 55
    assert sum(seen.values()) == sum(len(day) for day in run["days"])


def test_a_cold_predictor_reads_the_days_earlier_snapshots_from_the_database(
    local_cloud: Any, run: dict[str, Any]
) -> None:
    """Given a new predictor (a fresh sandbox: nothing warm) on the local cloud's database and S3, when its first
    record is a streamed day's snapshot at 300 s, then it loads the champion from the registry, reads the
    day's 30 earlier snapshots through the Data API, and predicts exactly the champion's whole-day values."""
    import json

    from closecast.ingest import StreamRecord
    from closecast_ml.live import ChampionCache, LivePredictor, s3_loader
    from closecast_tools.local.cloud import client
    from closecast_tools.market.replay import rows_as_dicts

    state = local_cloud.state
    api = loop.data_api_of(state)
    day = run["days"][-1]
    date_id = int(day["date_id"].to_numpy()[0])
    cache = ChampionCache(api, MODEL, s3_loader(client("s3", state["aws_endpoint_url"])))
    predictor = LivePredictor(api, cache)
    snapshot = day[day["seconds_in_bucket"] == 300]
    rows = rows_as_dicts(snapshot, with_target=False)  # full precision, as `closecast replay` sends them
    record = StreamRecord("1", "p", json.dumps({"data": rows}).encode())
    predicted, _ = predictor.predict(predictor.snapshots_of([record]))
    assert predictor.timings["database_reads"] > 0 and len(predictor.days[date_id].snapshots) == 31
    assert not any(r["partial"] for r in predicted)
    model = loop.load_model(state, predicted[0]["model_id"])
    whole_day = model.predict(day.drop(columns=["target", "oracle"]), center=True)
    at = (day["seconds_in_bucket"] == 300).to_numpy()
    expected = dict(zip(day["stock_id"].to_numpy()[at].tolist(), whole_day[at].tolist(), strict=True))
    assert len(predicted) == len(expected)
    for row in predicted:
        assert abs(row["value"] - expected[row["stock_id"]]) <= 1e-9


def test_a_replayed_snapshot_updates_its_predictions_and_adds_none(
    local_cloud: Any, run: dict[str, Any]
) -> None:
    """Given a streamed day, when its last snapshot is put on the stream again (twice), then the second time its
    predictions are rewritten in place (updated_at moves) and the day keeps one prediction per row and model
    (the first replay may add the current champion's, if the champion changed since the day streamed)."""
    state = local_cloud.state
    api = loop.data_api_of(state)
    day = run["days"][0]
    date_id = int(day["date_id"].to_numpy()[0])
    count_sql = "SELECT count(*) AS n, max(updated_at)::text AS last FROM prediction WHERE date_id = :d"
    keys_sql = (
        "SELECT count(*) AS n FROM (SELECT DISTINCT seconds_in_bucket, stock_id, model_id FROM prediction "
        "WHERE date_id = :d) AS k"
    )
    last = day[day["seconds_in_bucket"] == 540]
    counts = []
    for _ in range(2):
        before = api.execute(count_sql, {"d": date_id}).records[0]
        loop.replay_day(state, last, reveal_targets=False)
        loop.wait_until(
            lambda before=before: api.execute(count_sql, {"d": date_id}).records[0]["last"] != before["last"],
            what="the rewrite",
        )
        counts.append(api.execute(count_sql, {"d": date_id}).records[0]["n"])
    assert counts[1] == counts[0]
    assert api.execute(keys_sql, {"d": date_id}).records[0]["n"] == counts[1]


# ----------------------------------------------------------------------------- faults


def champion_id(local_cloud: Any) -> int:
    status, page = call("GET", f"{local_cloud.state['api_url']}/champions/")
    assert status == 200
    (champion,) = [c for c in page["data"] if c["name"] == MODEL]
    return int(champion["model_id"])


def promotions_on(local_cloud: Any, date_id: int) -> list[dict[str, Any]]:
    status, page = call("GET", f"{local_cloud.state['api_url']}/promotions/?name={MODEL}&page_size=1000")
    assert status == 200
    return [p for p in page["data"] if p["date_id"] == date_id]


def fault_day(market: pd.DataFrame, n: int) -> pd.DataFrame:
    return market[market["date_id"] == FIRST + BASE_DAYS + STREAMED_DAYS + n].reset_index(drop=True)


def test_targets_for_a_day_with_missing_rows_start_no_chain(
    local_cloud: Any, run: dict[str, Any], market: pd.DataFrame
) -> None:
    """Given a day streamed without stock 2's rows at 100..150 s but with all its targets revealed, then every
    row that came is predicted (stock 2 after the gap flagged partial, 6 snapshots missing), no chain starts
    (from the ingest or from the schedule, which names the day and why), and the champion stays."""
    import json

    from closecast_tools.local.cloud import client
    from closecast_tools.market.replay import target_records

    state = local_cloud.state
    before = champion_id(local_cloud)
    day = fault_day(market, 0)
    date_id = int(day["date_id"].iat[0])
    gap = (day["stock_id"] == 2) & day["seconds_in_bucket"].between(100, 150)
    streamed = day[~gap].reset_index(drop=True)
    kinesis = client("kinesis", state["aws_endpoint_url"])
    loop.replay_day(state, streamed)
    for record in target_records(day[gap]):  # the missing rows' targets arrive all the same
        kinesis.put_record(
            StreamName=state["stream_name"], Data=record.data, PartitionKey=record.partition_key
        )
    assert loop.wait_predictions(state["api_url"], date_id, len(streamed)) == len(streamed)
    api = loop.data_api_of(state)
    loop.wait_until(lambda: loop.revealed(api, date_id) == len(day))
    answer = local_cloud.invoke(
        "ChainScheduleFunction", json.loads((REPO / "events/chain_schedule/scheduled.json").read_text())
    )
    assert answer.ok, answer.error_message
    assert "rows are missing" in answer.payload["incomplete"][str(date_id)]
    assert loop.chain_job(state["api_url"], date_id) is None
    assert champion_id(local_cloud) == before and promotions_on(local_cloud, date_id) == []
    live = loop.day_predictions(api, date_id)
    late = live[(live["stock_id"] == 2) & (live["seconds_in_bucket"] > 150)]
    assert late["partial"].all() and len(late) > 0
    assert not live[live["stock_id"] != 2]["partial"].any()


class FaultyRdsData:
    """The real Data API client, except that statements matching `fails_on` answer as an unavailable database
    does (DatabaseUnavailableException) while `down` is set."""

    def __init__(self, real: Any, fails_on: str) -> None:
        self.real, self.fails_on, self.down, self.refused = real, fails_on, True, 0

    def execute_statement(self, **request: Any) -> Any:
        from botocore.exceptions import ClientError

        if self.down and self.fails_on in request["sql"]:
            self.refused += 1
            raise ClientError(
                {
                    "Error": {
                        "Code": "DatabaseUnavailableException",
                        "Message": "the database is unavailable",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 504},
                },
                "ExecuteStatement",
            )
        return self.real.execute_statement(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def services_for(local_cloud: Any, *, api: Any = None, s3: Any = None) -> Any:
    """The train function's services, in this process, on the local cloud (or with a faulty part)."""
    from closecast.config import JobsConfig, load
    from closecast_ml.runner import Services
    from closecast_tools.local.cloud import client

    state = local_cloud.state
    config = load(
        JobsConfig,
        {
            "DB_CLUSTER_ARN": state["db_cluster_arn"],
            "DB_SECRET_ARN": state["db_secret_arn"],
            "DB_NAME": state["database"],
            "BUCKET_NAME": state["bucket"],
            "STALE_JOB_SECONDS": "1",
        },
    )
    return Services(api or loop.data_api_of(state), s3 or client("s3", state["aws_endpoint_url"]), config)


def complete_day_without_chain(local_cloud: Any, market: pd.DataFrame, n: int, tmp: Path) -> tuple[int, Any]:
    """A fault day backfilled (rows with targets, not in the day store) and its chain created on a queue that no
    function reads, so that this test runs it."""
    from closecast import chain
    from closecast_tools.backfill import backfill, local_target
    from closecast_tools.local.cloud import client

    day = fault_day(market, n)
    csv = tmp / f"day{n}.csv"
    day[list(loop.KAGGLE_COLUMNS)].to_csv(csv, index=False)
    backfill(csv, local_target(local_cloud.options.state_dir / "local.json"), store=False, progress=False)
    sqs = client("sqs", local_cloud.state["aws_endpoint_url"])
    queue = sqs.create_queue(QueueName=f"live-loop-test-{n}")["QueueUrl"]
    api = loop.data_api_of(local_cloud.state)
    date_id = int(day["date_id"].iat[0])
    job = chain.start(api, sqs, queue, date_id, trigger="manual", model_name=MODEL)
    assert job is not None
    return date_id, job


def test_a_day_store_outage_mid_chain_promotes_nothing_and_says_why(
    local_cloud: Any, run: dict[str, Any], market: pd.DataFrame, tmp_path: Path
) -> None:
    """Given a complete day whose chain runs while S3 (the day store) is unreachable, then the chain goes back
    to its queue with the reason on the chain job and on its store_day step, nothing is promoted; when S3 is
    back the redelivered chain runs to the end."""
    import boto3

    from closecast_ml.runner import Retry, run_job

    before = champion_id(local_cloud)
    date_id, job = complete_day_without_chain(local_cloud, market, 1, tmp_path)
    dead_s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=__import__("botocore.config").config.Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(Retry):
        run_job(services_for(local_cloud, s3=dead_s3), job["id"], ("daily",))
    _, chain_job = call("GET", f"{local_cloud.state['api_url']}/jobs/{job['id']}")
    assert chain_job["status"] == "queued" and "endpoint" in chain_job["error"].lower()
    _, steps = call("GET", f"{local_cloud.state['api_url']}/jobs/?kind=store_day&page_size=50")
    (step,) = [s for s in steps["data"] if s["client_token"] == f"chain-{job['id']}-store_day"]
    assert step["status"] == "queued" and "endpoint" in step["error"].lower()
    assert champion_id(local_cloud) == before and promotions_on(local_cloud, date_id) == []
    done = run_job(services_for(local_cloud), job["id"], ("daily",))
    assert done["status"] == "succeeded", done["error"]
    assert len(promotions_on(local_cloud, date_id)) == 1


def test_a_database_outage_at_the_promotion_leaves_the_champion(
    local_cloud: Any, run: dict[str, Any], market: pd.DataFrame, tmp_path: Path
) -> None:
    """Given a complete day whose chain reaches the promote step while the database refuses the promotion, then
    the champion is unchanged, the promote step and the chain are back in the queue with the reason; when the
    database is back the chain finishes without training again (the train step is found done)."""
    from closecast.db.data_api import DataApi
    from closecast_ml.runner import Retry, run_job

    before = champion_id(local_cloud)
    date_id, job = complete_day_without_chain(local_cloud, market, 2, tmp_path)
    real = loop.data_api_of(local_cloud.state)
    faulty = FaultyRdsData(real._client, fails_on="INSERT INTO promotion")
    api = DataApi(faulty, real.resource_arn, real.secret_arn, real.database, max_attempts=2, base_delay=0.01)
    with pytest.raises(Retry):
        run_job(services_for(local_cloud, api=api), job["id"], ("daily",))
    assert faulty.refused >= 1
    _, chain_job = call("GET", f"{local_cloud.state['api_url']}/jobs/{job['id']}")
    assert chain_job["status"] == "queued" and "unavailable" in chain_job["error"]
    assert champion_id(local_cloud) == before and promotions_on(local_cloud, date_id) == []
    _, trains = call("GET", f"{local_cloud.state['api_url']}/jobs/?kind=train&page_size=50")
    (train,) = [t for t in trains["data"] if t["client_token"] == f"chain-{job['id']}-train"]
    faulty.down = False
    done = run_job(services_for(local_cloud, api=api), job["id"], ("daily",))
    assert done["status"] == "succeeded", done["error"]
    _, again = call("GET", f"{local_cloud.state['api_url']}/jobs/{train['id']}")
    assert again["attempts"] == 1 and again["status"] == "succeeded"
    assert len(promotions_on(local_cloud, date_id)) == 1


def test_a_corrupted_champion_fails_the_chain_and_live_predictions_continue(
    local_cloud: Any, run: dict[str, Any], market: pd.DataFrame
) -> None:
    """Given the champion's model file overwritten with garbage in S3, when the next day streams with its
    targets, then its chain fails at the train step naming the unusable artifact, nothing is promoted, and
    every row of the day is still predicted live by one good champion (the predictor never swaps in a model
    it cannot load)."""
    from closecast_tools.local.cloud import client

    state = local_cloud.state
    before = champion_id(local_cloud)
    models = call("GET", f"{state['api_url']}/models/?page_size=1000")[1]["data"]
    record = next(m for m in models if m["id"] == before)
    s3 = client("s3", state["aws_endpoint_url"])
    bucket, _, key = record["artifact_uri"].removeprefix("s3://").partition("/")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=b"not a model")
    try:
        day = loop.shift_dates(fault_day(market, 2), FIRST + BASE_DAYS + STREAMED_DAYS + FAULT_DAYS)
        date_id = int(day["date_id"].iat[0])
        loop.replay_day(state, day)
        assert loop.wait_predictions(state["api_url"], date_id, len(day)) == len(day)
        chain = loop.wait_chain(state["api_url"], date_id, timeout_s=300)
        assert chain["status"] == "failed"
        assert "step train" in chain["error"] and "unusable" in chain["error"]
        assert champion_id(local_cloud) == before and promotions_on(local_cloud, date_id) == []
        live = loop.day_predictions(loop.data_api_of(state), date_id)
        (used,) = set(live["model_id"])  # one model predicted the whole day: the last good champion
        status, page = call(
            "GET", f"{state['api_url']}/promotions/?name={MODEL}&decision=promoted&page_size=1000"
        )
        assert status == 200 and used in {p["model_id"] for p in page["data"]}
        # the champion in memory when the file was corrupted (loaded before), or the one it had before if the
        # corrupted champion was never loaded (promoted meanwhile by a chain run outside the cloud)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
