"""Jobs on the local cloud, end to end: POST /jobs/ (or the original's /train-model/, /inference-model/) -> SQS ->
the train/inference image functions -> S3 + the registry -> GET /jobs/{id} shows how it ended. History comes
in through `closecast backfill` (a Kaggle-format train.csv of a synthetic market, date_ids 1000..1011)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_tools.local.cloud import client
from closecast_tools.local.http import call

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST, DAYS = 1000, 12
LAST = FIRST + DAYS - 1  # 1011: the day predicted; training uses 1000..1010


@pytest.fixture(scope="module")
def history(local_cloud: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Given a synthetic market of 12 days x 20 stocks written as a Kaggle train.csv (date_ids 1000..1011) and
    backfilled into the local cloud's database and day store."""
    from closecast_ml.dataset import read_dataset
    from closecast_tools.backfill import backfill, local_target
    from closecast_tools.market.generate import write_dataset

    directory = tmp_path_factory.mktemp("market")
    write_dataset(directory / "gen", days=DAYS, seed=11, n_stocks=20)
    frame = read_dataset(directory / "gen", with_oracle=False)
    frame["date_id"] = frame["date_id"].astype("int64") + FIRST
    frame["time_id"] = frame["date_id"] * 55 + frame["seconds_in_bucket"] // 10
    frame["row_id"] = (
        frame["date_id"].astype(str)
        + "_"
        + frame["seconds_in_bucket"].astype(str)
        + "_"
        + frame["stock_id"].astype(str)
    )
    csv = directory / "train.csv"
    frame[list(KAGGLE_COLUMNS)].to_csv(csv, index=False)
    report = backfill(csv, local_target(local_cloud.options.state_dir / "local.json"), progress=False)
    assert report.days == DAYS and report.stored == list(range(FIRST, LAST + 1))
    return {"frame": frame, "csv": csv}


def api(local_cloud: Any) -> str:
    return str(local_cloud.state["api_url"])


def wait_for(local_cloud: Any, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, job = call("GET", f"{api(local_cloud)}/jobs/{job_id}")
        assert status == 200, job
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return dict(job)
        time.sleep(0.3)


def post_job(local_cloud: Any, body: dict[str, Any]) -> dict[str, Any]:
    status, job = call("POST", f"{api(local_cloud)}/jobs/", body)
    assert status == 202, job
    assert job["status"] == "queued"
    return dict(job)


def run(local_cloud: Any, body: dict[str, Any]) -> dict[str, Any]:
    return wait_for(local_cloud, post_job(local_cloud, body)["id"])


def models_named(local_cloud: Any, name: str) -> list[dict[str, Any]]:
    status, page = call("GET", f"{api(local_cloud)}/models/?name={name}")
    assert status == 200, page
    return list(page["data"])


def s3_bytes(local_cloud: Any, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(
        client("s3", local_cloud.state["aws_endpoint_url"]).get_object(Bucket=bucket, Key=key)["Body"].read()
    )


@pytest.fixture(scope="module")
def base_model(local_cloud: Any, history: dict[str, Any]) -> dict[str, Any]:
    """A refit on 1000..1010 through POST /jobs/."""
    job = run(
        local_cloud,
        {"kind": "train", "model_name": "jobs-base", "start_date_id": FIRST, "end_date_id": LAST - 1},
    )
    assert job["status"] == "succeeded", job["error"]
    return job


def test_a_train_job_runs_from_post_to_the_registry(local_cloud: Any, base_model: dict[str, Any]) -> None:
    """Given backfilled days, when POST /jobs/ asks for a refit, then the job goes queued -> running ->
    succeeded with timings, the model file and its metadata are in S3 under models/<name>/<version>/, and the
    model row names them, its feature set and the last day trained."""
    result = base_model["result"]
    assert base_model["attempts"] == 1 and base_model["started_at"] and base_model["finished_at"]
    assert result["artifact_uri"].endswith("/models/jobs-base/1/model.ubj")
    assert result["metadata_uri"].endswith("/models/jobs-base/1/metadata.json")
    (model,) = models_named(local_cloud, "jobs-base")
    assert model["id"] == result["model_id"] and model["version"] == 1
    assert model["last_trained_date_id"] == LAST - 1 and model["feature_set"] == "full"
    assert model["job_id"] == base_model["id"] and model["days_trained"] == list(range(FIRST, LAST))
    assert model["training"] == {"strategy": "refit"}
    assert s3_bytes(local_cloud, model["artifact_uri"]) and s3_bytes(local_cloud, model["metadata_uri"])


def test_a_model_round_trips_through_s3_and_predicts_the_same_numbers(
    local_cloud: Any, history: dict[str, Any]
) -> None:
    """Given a model trained in this process, when its files go to S3 and come back, then the loaded model
    predicts exactly the same numbers for an unseen day, and keeps its feature list and metadata."""
    from closecast_ml.model import ModelArtifact
    from closecast_ml.training import fit

    frame = history["frame"]
    model = fit(frame[frame["date_id"].between(FIRST, FIRST + 3)], feature_set="full", valid_days=1)
    s3 = client("s3", local_cloud.state["aws_endpoint_url"])
    bucket = local_cloud.state["bucket"]
    model_bytes, metadata_bytes = model.to_bytes()
    s3.put_object(Bucket=bucket, Key="models/roundtrip/1/model.ubj", Body=model_bytes)
    s3.put_object(Bucket=bucket, Key="models/roundtrip/1/metadata.json", Body=metadata_bytes)
    loaded = ModelArtifact.from_bytes(
        s3_bytes(local_cloud, f"s3://{bucket}/models/roundtrip/1/model.ubj"),
        s3_bytes(local_cloud, f"s3://{bucket}/models/roundtrip/1/metadata.json"),
    )
    day = frame[frame["date_id"] == LAST].drop(columns=["target"])
    assert np.array_equal(loaded.predict(day), model.predict(day))
    assert loaded.features == model.features and loaded.metadata == model.metadata


def test_a_registered_model_records_the_stored_version_of_every_day_it_trained_on(
    local_cloud: Any, base_model: dict[str, Any]
) -> None:
    """Given the refit through a job, then its metadata in S3 names the day store version of each day read."""
    import json

    metadata = json.loads(s3_bytes(local_cloud, base_model["result"]["metadata_uri"]))
    assert metadata["day_versions"] == {str(d): 1 for d in range(FIRST, LAST)}
    assert metadata["job_id"] == base_model["id"]


def test_an_inference_job_writes_the_csv_and_its_record_with_the_mae_beside_zero(
    local_cloud: Any, base_model: dict[str, Any], history: dict[str, Any]
) -> None:
    """Given the model, when an inference job predicts day 1011, then the CSV under predictions/ has a row per
    snapshot row (row_id, stock_id, seconds_in_bucket, prediction, target) with the model's own predictions,
    and the model_inference row has the row count and the MAE of the model and of zero."""
    from closecast_ml.model import ModelArtifact

    model_id = base_model["result"]["model_id"]
    job = run(local_cloud, {"kind": "inference", "model_id": model_id, "date_id": LAST})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    csv = pd.read_csv(io.BytesIO(s3_bytes(local_cloud, result["predictions_uri"])))
    assert list(csv.columns) == ["row_id", "stock_id", "seconds_in_bucket", "prediction", "target"]
    day = history["frame"][history["frame"]["date_id"] == LAST].sort_values(["seconds_in_bucket", "stock_id"])
    assert len(csv) == len(day) == result["n_rows"]
    model = ModelArtifact.from_bytes(
        s3_bytes(local_cloud, base_model["result"]["artifact_uri"]),
        s3_bytes(local_cloud, base_model["result"]["metadata_uri"]),
    )
    expected = model.predict(day.drop(columns=["target"]), center=True)  # centred by default, as served live
    assert np.allclose(csv["prediction"].to_numpy(), expected, atol=1e-6)
    assert result["mae"] == pytest.approx(
        float(np.mean(np.abs(expected - day["target"].to_numpy()))), abs=1e-6
    )
    assert result["zero_mae"] == pytest.approx(float(np.mean(np.abs(day["target"].to_numpy()))))
    status, page = call("GET", f"{api(local_cloud)}/model-inferences/?model_id={model_id}&date_id={LAST}")
    assert status == 200 and page["total_results"] == 1
    record = page["data"][0]
    assert record["n_rows"] == len(day) and record["mae"] == pytest.approx(result["mae"])
    assert record["zero_mae"] == pytest.approx(result["zero_mae"]) and record["job_id"] == job["id"]


def test_a_daily_update_records_its_parent_and_the_days_of_its_window(
    local_cloud: Any, base_model: dict[str, Any]
) -> None:
    """Given the base model, when a train job updates it with day 1011, then the job succeeds and either
    registers a child whose row and metadata name the parent, or (the guard found the update worse) keeps the
    parent and registers nothing."""
    parent_id = base_model["result"]["model_id"]
    before = models_named(local_cloud, "jobs-daily")
    job = run(
        local_cloud, {"kind": "train", "model_name": "jobs-daily", "parent_id": parent_id, "date_id": LAST}
    )
    assert job["status"] == "succeeded", job["error"]
    after = models_named(local_cloud, "jobs-daily")
    if job["result"].get("kept_parent"):
        assert after == before and job["result"]["model_id"] == parent_id
        return
    (child,) = [m for m in after if m["id"] == job["result"]["model_id"]]
    assert child["parent_id"] == parent_id and child["last_trained_date_id"] == LAST
    import json

    metadata = json.loads(s3_bytes(local_cloud, child["metadata_uri"]))
    assert metadata["parent"]["id"] == parent_id


def test_an_update_of_a_model_whose_fit_is_refit_every_days_old_is_the_scheduled_refit(
    local_cloud: Any, history: dict[str, Any]
) -> None:
    """Given a model fitted on 1000..1001 only, when a train job updates it with day 1011 (REFIT_EVERY_DAYS after
    its fit), then the job refits from scratch on every day from the parent's first to 1011 and registers the
    refit with its parent named and why it was a refit."""
    from closecast_ml import training

    assert LAST - (FIRST + 1) >= training.REFIT_EVERY_DAYS
    old = run(
        local_cloud,
        {"kind": "train", "model_name": "jobs-refit", "start_date_id": FIRST, "end_date_id": FIRST + 1},
    )
    assert old["status"] == "succeeded", old["error"]
    parent_id = old["result"]["model_id"]
    job = run(
        local_cloud, {"kind": "train", "model_name": "jobs-refit", "parent_id": parent_id, "date_id": LAST}
    )
    assert job["status"] == "succeeded", job["error"]
    (refit,) = [m for m in models_named(local_cloud, "jobs-refit") if m["id"] == job["result"]["model_id"]]
    assert refit["parent_id"] == parent_id and refit["training"]["strategy"] == "scheduled-refit"
    assert refit["days_trained"] == list(range(FIRST, LAST + 1))
    assert refit["metrics"]["mae"] < refit["metrics"]["zero_mae"]


def test_the_original_train_model_and_inference_model_calls_start_the_same_jobs(
    local_cloud: Any, base_model: dict[str, Any]
) -> None:
    """Given the original training service's calls, when POST /train-model/ (with the original's example shape:
    a range and a date_id inside it) and POST /inference-model/ arrive, then each answers 202 with the
    original's message and a job, and both jobs succeed."""
    parent_id = base_model["result"]["model_id"]
    status, body = call(
        "POST",
        f"{api(local_cloud)}/train-model/",
        {
            "model_id": parent_id,
            "model_name": "orig",
            "start_date_id": LAST - 1,
            "end_date_id": LAST,
            "date_id": LAST,
        },
    )
    assert status == 202, body
    assert body["message"] == "Training started for model orig"
    assert body["job"]["kind"] == "train" and body["job"]["params"]["parent_id"] == parent_id
    status, inference = call(
        "POST", f"{api(local_cloud)}/inference-model/", {"model_id": parent_id, "pred_date_id": LAST}
    )
    assert status == 202, inference
    assert inference["message"] == f"Inference started for model {parent_id}"
    assert inference["job"]["params"] == {"model_id": parent_id, "date_id": LAST, "center": True}
    for job_id in (body["job"]["id"], inference["job"]["id"]):
        job = wait_for(local_cloud, job_id)
        assert job["status"] == "succeeded", job["error"]


def test_a_retried_post_with_the_same_client_token_starts_nothing_twice(
    local_cloud: Any, base_model: dict[str, Any]
) -> None:
    """Given a POST /jobs/ with a client_token, when it is sent three times, then each answer is the same job,
    which runs once; the same token for a different request is a 409."""
    body = {
        "kind": "inference",
        "model_id": base_model["result"]["model_id"],
        "date_id": LAST,
        "client_token": "retry-1",
    }
    answers = [call("POST", f"{api(local_cloud)}/jobs/", body) for _ in range(3)]
    assert [s for s, _ in answers] == [202, 202, 202]
    assert len({a["id"] for _, a in answers}) == 1
    job = wait_for(local_cloud, answers[0][1]["id"])
    assert job["status"] == "succeeded" and job["attempts"] == 1
    status, page = call("GET", f"{api(local_cloud)}/jobs/?kind=inference&page_size=1000")
    assert status == 200 and [j["client_token"] for j in page["data"]].count("retry-1") == 1
    status, conflict = call("POST", f"{api(local_cloud)}/jobs/", {**body, "date_id": LAST - 1})
    assert status == 409 and "retry-1" in conflict["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"kind": "train", "model_name": "bad-nodata", "start_date_id": 7000, "end_date_id": 7005},
            "no complete day",
        ),
        (
            {"kind": "train", "model_name": "bad-parent", "parent_id": 987654, "date_id": LAST},
            "parent model 987654 does not exist",
        ),
        ({"kind": "inference", "model_id": 987654, "date_id": LAST}, "model 987654 does not exist"),
        ({"kind": "inference", "model_id": "BASE", "date_id": 7000}, "no rows for date_id 7000"),
        (
            {
                "kind": "train",
                "model_name": "bad-features",
                "parent_id": "BASE",
                "date_id": LAST,
                "feature_set": "seed",
            },
            "feature set 'seed' differs",
        ),
    ],
    ids=[
        "date-without-data",
        "unknown-parent",
        "unknown-model",
        "inference-day-without-rows",
        "feature-set-mismatch",
    ],
)
def test_a_job_that_cannot_succeed_fails_with_its_reason_and_registers_nothing(
    local_cloud: Any, base_model: dict[str, Any], body: dict[str, Any], reason: str
) -> None:
    """Given a job asking for what cannot be done, when it runs, then it ends failed with a reason a person
    understands, and no model or model_inference row appears."""
    base_id = base_model["result"]["model_id"]
    body = {k: (base_id if v == "BASE" else v) for k, v in body.items()}
    counts = [
        call("GET", f"{api(local_cloud)}/{r}/?page_size=1")[1]["total_results"]
        for r in ("models", "model-inferences")
    ]
    job = run(local_cloud, body)
    assert job["status"] == "failed" and job["result"] is None
    assert reason in job["error"], job["error"]
    after = [
        call("GET", f"{api(local_cloud)}/{r}/?page_size=1")[1]["total_results"]
        for r in ("models", "model-inferences")
    ]
    assert after == counts


def test_a_corrupted_artifact_in_s3_fails_the_job_that_reads_it(
    local_cloud: Any, base_model: dict[str, Any]
) -> None:
    """Given a registered model whose file in S3 was overwritten with garbage, when an inference job and a
    daily update use it, then both fail saying the artifact is unusable, and nothing is registered."""
    result = base_model["result"]
    status, copy = call(
        "POST",
        f"{api(local_cloud)}/models/",
        {
            "name": "jobs-corrupt",
            "artifact_uri": result["artifact_uri"].replace("/jobs-base/1/", "/jobs-corrupt/1/"),
            "metadata_uri": result["metadata_uri"].replace("/jobs-base/1/", "/jobs-corrupt/1/"),
            "feature_set": "full",
        },
    )
    assert status == 201, copy
    s3 = client("s3", local_cloud.state["aws_endpoint_url"])
    bucket = local_cloud.state["bucket"]
    s3.put_object(Bucket=bucket, Key="models/jobs-corrupt/1/model.ubj", Body=b"\x00garbage, not a booster")
    s3.put_object(
        Bucket=bucket,
        Key="models/jobs-corrupt/1/metadata.json",
        Body=s3_bytes(local_cloud, result["metadata_uri"]),
    )
    for body in (
        {"kind": "inference", "model_id": copy["id"], "date_id": LAST},
        {"kind": "train", "model_name": "jobs-corrupt-child", "parent_id": copy["id"], "date_id": LAST},
    ):
        job = run(local_cloud, body)
        assert job["status"] == "failed"
        assert f"model {copy['id']}: its artifact" in job["error"] and "unusable" in job["error"], job[
            "error"
        ]
    assert models_named(local_cloud, "jobs-corrupt-child") == []
    status, page = call("GET", f"{api(local_cloud)}/model-inferences/?model_id={copy['id']}")
    assert page["total_results"] == 0


def test_the_day_store_rewrites_a_day_when_its_rows_or_targets_change(
    local_cloud: Any, history: dict[str, Any]
) -> None:
    """Given day 1005 in the day store (version 1), when the same rows are sent again a store_day job keeps the
    version (same content); when one row's value changes, the next store_day job rewrites the day with the
    version bumped and the new value in the Parquet object."""
    from closecast.day_store import stored_day
    from closecast_ml.daystore import decode
    from closecast_tools.backfill import local_target

    date_id = FIRST + 5
    dbapi = local_target(local_cloud.options.state_dir / "local.json").api
    before = stored_day(dbapi, date_id)
    assert before is not None and before.version == 1
    day = decode(s3_bytes(local_cloud, f"s3://{local_cloud.state['bucket']}/{before.key}")).head(3)
    rows = day[list(KAGGLE_COLUMNS)].astype(object).where(day.notna(), None).to_dict("records")
    status, body = call("POST", f"{api(local_cloud)}/stock_data/", {"data": rows})
    assert status == 201, body
    job = run(local_cloud, {"kind": "store_day", "date_id": date_id})
    assert job["status"] == "succeeded" and job["result"]["written"] == [date_id]
    assert stored_day(dbapi, date_id).version == 1  # type: ignore[union-attr]
    changed = {**rows[0], "bid_size": float(rows[0]["bid_size"]) + 1000.0}
    status, body = call("POST", f"{api(local_cloud)}/stock_data/", {"data": [changed]})
    assert status == 201, body
    job = run(local_cloud, {"kind": "store_day", "date_id": date_id})
    assert job["status"] == "succeeded" and job["result"]["written"] == [date_id]
    after = stored_day(dbapi, date_id)
    assert after is not None and after.version == 2 and after.sha256 != before.sha256
    stored = decode(s3_bytes(local_cloud, f"s3://{local_cloud.state['bucket']}/{after.key}"))
    row = stored[stored["row_id"] == changed["row_id"]].iloc[0]
    assert row["bid_size"] == pytest.approx(changed["bid_size"])
    job = run(local_cloud, {"kind": "store_day", "date_id": date_id})
    assert job["result"]["written"] == [] and stored_day(dbapi, date_id).version == 2  # type: ignore[union-attr]


def test_bad_job_requests_are_4xx_naming_the_field(local_cloud: Any) -> None:
    """Given malformed job requests, then each is refused with a 4xx naming what is wrong, and GET of an
    unknown or malformed job id is 404 / 400."""
    url = f"{api(local_cloud)}/jobs/"
    status, body = call("POST", url, {"kind": "train", "model_name": "x"})
    assert status == 422 and "date_id" in body["errors"][0]["message"]
    status, body = call("POST", url, {"kind": "forecast"})
    assert status == 422 and "forecast" in body["errors"][0]["message"]
    status, body = call("POST", url, {"kind": "inference", "model_id": 1, "date_id": 1, "colour": "red"})
    assert status == 422 and "colour" in str(body["errors"])
    status, body = call("POST", f"{api(local_cloud)}/train-model/", {"model_name": "x", "start_date_id": 5})
    assert status == 422 and "end_date_id" in body["errors"][0]["message"]
    assert call("GET", f"{url}0b7c2f4e-0000-4000-8000-00000000abcd")[0] == 404
    status, body = call("GET", f"{url}not-a-uuid")
    assert status == 400 and body["errors"][0]["field"] == "job_id"
    status, body = call("GET", f"{url}?status=lost")
    assert status == 422 and body["errors"][0]["field"] == "status"


class FlakyS3:
    """The local S3 client, whose first `put_object` fails as an unreachable endpoint does."""

    def __init__(self, s3: Any) -> None:
        self.s3, self.failed = s3, False

    def put_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import EndpointConnectionError

        if not self.failed:
            self.failed = True
            raise EndpointConnectionError(endpoint_url="http://s3.local")
        return self.s3.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def test_a_transient_fault_returns_the_job_to_the_queue_and_its_redelivery_runs_it(
    local_cloud: Any, base_model: dict[str, Any]
) -> None:
    """Given an inference job whose first attempt meets an unreachable S3, when its SQS message is handled, then
    the message is reported as a batch item failure and the job is back to `queued`; when the message comes
    again, the job runs (attempt 2) and succeeds; a third delivery finds it finished and changes nothing."""
    from closecast.config import JobsConfig, load
    from closecast.resources.jobs import sql as jobs
    from closecast_ml.runner import Services, handle
    from closecast_tools.backfill import local_target

    target = local_target(local_cloud.options.state_dir / "local.json")
    config = load(JobsConfig, local_cloud.function_environment("InferenceFunction"))
    job, _ = jobs.create(
        target.api,
        "inference",
        {"model_id": base_model["result"]["model_id"], "date_id": LAST, "center": True},
        None,
    )
    services = Services(target.api, FlakyS3(target.s3), config)
    event = {
        "Records": [{"messageId": "m-1", "body": json.dumps({"job_id": job["id"], "kind": "inference"})}]
    }
    assert handle(event, services, ("inference",)) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert jobs.get(target.api, job["id"])["status"] == "queued"  # type: ignore[index]
    assert handle(event, services, ("inference",)) == {"batchItemFailures": []}
    done = jobs.get(target.api, job["id"])
    assert done is not None and done["status"] == "succeeded" and done["attempts"] == 2
    assert done["result"]["centered"] is True
    assert handle(event, services, ("inference",)) == {"batchItemFailures": []}
    assert jobs.get(target.api, job["id"]) == done
