"""The replaced project's clients against the local cloud (real HTTP, real PostgreSQL): its paging client, its
stream producer's records, its training service's model and inference calls; and the hand-made requests that
used to answer 5xx or HTML."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from closecast_tools.local.cloud import client

pytestmark = pytest.mark.integration


def request(
    method: str, url: str, data: bytes | None = None, content_type: str = "application/json"
) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, raw, media = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, media = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    assert media.startswith("application/json"), (status, media, raw[:200])
    return status, json.loads(raw or b"null")


def post(url: str, body: Any) -> tuple[int, Any]:
    return request("POST", url, json.dumps(body).encode())


def rows_of(date_id: int, stocks: int, train_type: str | None, seconds: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(date_id)
    rows = []
    for stock in range(stocks):
        row: dict[str, Any] = {
            "stock_id": stock,
            "date_id": date_id,
            "seconds_in_bucket": seconds,
            "imbalance_size": round(rng.uniform(0, 1e6), 2),
            "imbalance_buy_sell_flag": rng.choice([-1, 0, 1]),
            "reference_price": round(rng.uniform(0.99, 1.01), 6),
            "matched_size": round(rng.uniform(1e5, 1e7), 2),
            "far_price": None,
            "near_price": None,
            "bid_price": round(rng.uniform(0.99, 1.0), 6),
            "bid_size": round(rng.uniform(0, 1e5), 2),
            "ask_price": round(rng.uniform(1.0, 1.01), 6),
            "ask_size": round(rng.uniform(0, 1e5), 2),
            "wap": 1.0,
            "target": round(rng.uniform(-10, 10), 6),
            "time_id": date_id * 55 + seconds // 10,
            "row_id": f"{date_id}_{seconds}_{stock}",
        }
        if train_type is not None:
            row["train_type"] = train_type
        rows.append(row)
    return rows


def page_through(url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """A client like the original's: page_size 50, pages from 1 until page >= total_pages."""
    collected: list[dict[str, Any]] = []
    page = 1
    while True:
        query = "&".join(f"{k}={v}" for k, v in {**params, "page_size": 50, "page": page}.items())
        status, body = request("GET", f"{url}?{query}")
        assert status == 200, body
        collected.extend(body["data"])
        if page >= body["total_pages"]:
            return collected
        page += 1


def test_the_original_paging_client_reads_an_inclusive_date_range_with_its_tags(local_cloud: Any) -> None:
    """Given 3 days of 40 rows posted with train_type "prod" and a 4th day tagged "demo_27", when the original's
    paging client asks for start_date_id..end_date_id over the first 3 days, then it gets exactly their 120
    rows, each with train_type "prod"; and train_type filters."""
    api = local_cloud.state["api_url"]
    for day in (8100, 8101, 8102):
        assert post(f"{api}/stock_data/", {"data": rows_of(day, 40, "prod"), "commit": True})[0] == 201
    assert post(f"{api}/stock_data/", {"data": rows_of(8103, 40, "demo_27")})[0] == 201
    got = page_through(f"{api}/stock_data/", {"start_date_id": 8100, "end_date_id": 8102})
    assert len(got) == 120
    assert {r["train_type"] for r in got} == {"prod"}
    assert {r["date_id"] for r in got} == {8100, 8101, 8102}
    tagged = page_through(f"{api}/stock_data/", {"train_type": "demo_27", "date_id": 8103})
    assert len(tagged) == 40


def test_commit_false_stores_nothing(local_cloud: Any) -> None:
    api = local_cloud.state["api_url"]
    status, body = post(f"{api}/stock_data/", {"data": rows_of(8110, 5, "prod"), "commit": False})
    assert (status, body) == (200, {"rows": 5, "committed": False})
    assert request("GET", f"{api}/stock_data/?date_id=8110")[1]["total_results"] == 0


def test_a_row_of_keys_alone_cannot_null_stored_features(local_cloud: Any) -> None:
    api = local_cloud.state["api_url"]
    row = rows_of(8120, 1, "prod")[0]
    assert post(f"{api}/stock_data/", {"data": [row]})[0] == 201
    keys = {k: row[k] for k in ("stock_id", "date_id", "seconds_in_bucket", "imbalance_buy_sell_flag")}
    status, body = post(f"{api}/stock_data/", {"data": [keys]})
    assert status == 422
    assert {e["field"] for e in body["errors"]} >= {"data.0.wap", "data.0.bid_size"}
    stored = request("GET", f"{api}/stock_data/?date_id=8120")[1]["data"][0]
    assert stored["wap"] == row["wap"] and stored["bid_size"] == row["bid_size"]


def test_two_rows_with_one_key_store_nothing(local_cloud: Any) -> None:
    api = local_cloud.state["api_url"]
    row = rows_of(8130, 1, "prod")[0]
    status, body = post(f"{api}/stock_data/", {"data": [row, dict(row, wap=1.5)]})
    assert status == 400
    assert body["errors"][0]["field"] == "data.1"
    assert request("GET", f"{api}/stock_data/?date_id=8130")[1]["total_results"] == 0


def test_the_original_producers_records_land_every_row_with_its_tag(local_cloud: Any) -> None:
    """Given the original producer's records (envelopes of 50 rows, each row tagged, partition key "1", bare
    NaN for missing prices), when 8 of them go onto the stream, then all 400 rows are stored with the tag."""
    rows = [dict(r, far_price=float("nan")) for day in (8140, 8141) for r in rows_of(day, 200, "demo_27")]
    kinesis = client("kinesis", local_cloud.state["aws_endpoint_url"])
    for start in range(0, len(rows), 50):
        data = json.dumps({"data": rows[start : start + 50], "commit": True})
        assert "NaN" in data
        kinesis.put_record(StreamName=local_cloud.state["stream_name"], Data=data.encode(), PartitionKey="1")
    api = local_cloud.state["api_url"]
    deadline = time.monotonic() + 120
    while True:
        body = request("GET", f"{api}/stock_data/?start_date_id=8140&end_date_id=8141&train_type=demo_27")[1]
        if body["total_results"] >= 400 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert body["total_results"] == 400
    assert body["data"][0]["far_price"] is None


def test_the_original_training_service_registers_a_model_and_its_predictions(local_cloud: Any) -> None:
    """Given the original's model body, then the model is listed by model_name and model_id with the original's
    names; and its inference, posted with a predictions key, is listed with that key."""
    api = local_cloud.state["api_url"]
    status, model = post(
        f"{api}/models/",
        {
            "model_name": "original-svc",
            "model_artifact_path": "trained_models/original-svc.ubj",
            "date_id": 380,
        },
    )
    assert status == 201, model
    listed = page_through(f"{api}/models/", {"model_name": "original-svc"})
    assert [m["model_id"] for m in listed] == [model["model_id"]]
    by_id = page_through(f"{api}/models/", {"model_id": model["model_id"]})[0]
    assert (by_id["model_name"], by_id["model_artifact_path"], by_id["date_id"]) == (
        "original-svc",
        "trained_models/original-svc.ubj",
        380,
    )
    assert by_id["artifact_uri"] == f"s3://{local_cloud.state['bucket']}/trained_models/original-svc.ubj"
    key = f"inference_data/inference_{model['model_id']}_381.csv"
    status, inference = post(
        f"{api}/model-inferences/", {"model_id": model["model_id"], "date_id": 381, "predictions": key}
    )
    assert status == 201, inference
    listed = page_through(f"{api}/model-inferences/", {"model_id": model["model_id"], "date_id": 381})
    assert [i["predictions"] for i in listed] == [key]


def test_date_mappings_carry_date_and_filter_by_it(local_cloud: Any) -> None:
    api = local_cloud.state["api_url"]
    assert post(f"{api}/date_mappings/", {"data": [{"date_id": 8150, "date": "2031-03-04"}]})[0] == 201
    status, body = request("GET", f"{api}/date_mappings/?date=2031-03-04")
    assert (status, body["data"]) == (
        200,
        [{"date_id": 8150, "trading_date": "2031-03-04", "date": "2031-03-04"}],
    )
    status, body = post(f"{api}/date_mappings/", {"data": [{"date_id": 8151, "date": "2031-03-04"}]})
    assert status == 409
    assert "constraint" not in json.dumps(body) and "date_mapping_" not in json.dumps(body)


def test_healthcheck_says_the_database_is_reachable(local_cloud: Any) -> None:
    for path in ("/healthcheck", "/healthcheck/"):
        assert request("GET", local_cloud.state["api_url"] + path) == (
            200,
            {"status": "ok", "database": "reachable"},
        )


@pytest.mark.parametrize(
    ("method", "data", "content_type", "status"),
    [
        ("POST", b"--x\r\n\r\n--x--", "multipart/form-data", 415),
        ("POST", b"[" * 50_000 + b"]" * 50_000, "application/json", 400),
        ("POST", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json", 400),
        ("TRACE", None, "application/json", 404),
        ("BREW", None, "application/json", 404),
    ],
    ids=["multipart-without-boundary", "deep-arrays", "deep-objects", "trace", "unknown-method"],
)
def test_hand_made_requests_answer_json_4xx(
    local_cloud: Any, method: str, data: bytes | None, content_type: str, status: int
) -> None:
    got, body = request(method, local_cloud.state["api_url"] + "/stock_data/", data, content_type)
    assert got == status
    assert "message" in body
