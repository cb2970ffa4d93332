"""Every HTTP function, called the way API Gateway calls it, with the Data API stubbed at the client boundary:
statuses, bodies, and the SQL each filter turns into."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from closecast.db.data_api import Result
from closecast.db.errors import TransientDatabaseError, database_error_from_message
from tests.event_statuses import EXPECTED_STATUS, NEEDS_QUEUE, STATIC_PAGE
from tests.unit.api.conftest import BUCKET, Answered, FakeDataApi, event, snapshot

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parents[3] / "events"
Call = Callable[[str, dict[str, Any]], Answered]

UNIQUE = database_error_from_message(
    'ERROR: duplicate key value violates unique constraint "model_name_version_key"\n'
    "  Detail: Key (name, version)=(m, 1) already exists.; SQLState: 23505",
    code="DatabaseErrorException",
)


def _no_model_999999(sql: str, params: dict[str, Any]) -> Result | None:
    return Result(records=[]) if "FROM model WHERE id" in sql and params.get("id") == 999999 else None


# ------------------------------------------------------------------ sample events


@pytest.mark.parametrize("name", sorted(set(EXPECTED_STATUS) - NEEDS_QUEUE - STATIC_PAGE))
def test_each_sample_event_answers_its_exact_status(call: Call, fake_api: FakeDataApi, name: str) -> None:
    """Given a sample event of events/ and a stubbed database, when its function handles it, then the answer
    is the status the event stands for, with a JSON body."""
    fake_api.answers.append(_no_model_999999)
    answered = call(Path(name).parent.name, json.loads((EVENTS / name).read_text()))
    assert answered.status == EXPECTED_STATUS[name], answered.body


def test_every_http_sample_event_has_an_expected_status() -> None:
    """Given events/, then every HTTP sample event is in the table of expected statuses."""
    http = {
        str(p.relative_to(EVENTS)) for p in EVENTS.rglob("*.json") if "routeKey" in json.loads(p.read_text())
    }
    assert http == set(EXPECTED_STATUS)


# ------------------------------------------------------------------ /stock_data/ filters

STOCK_FILTERS = [
    ({"date_id": 3}, "date_id = :date_id", {"date_id": 3}),
    ({"date_id_from": 3}, "date_id >= :date_id_from", {"date_id_from": 3}),
    ({"date_id_to": 5}, "date_id <= :date_id_to", {"date_id_to": 5}),
    ({"start_date_id": 3}, "date_id >= :date_id_from", {"date_id_from": 3}),
    ({"end_date_id": 5}, "date_id <= :date_id_to", {"date_id_to": 5}),
    ({"start_date_id": 2, "date_id_from": 4}, "date_id >= :date_id_from", {"date_id_from": 4}),
    ({"end_date_id": 9, "date_id_to": 6}, "date_id <= :date_id_to", {"date_id_to": 6}),
    ({"stock_id": 7}, "stock_id = :stock_id", {"stock_id": 7}),
    ({"seconds_in_bucket": 540}, "seconds_in_bucket = :seconds_in_bucket", {"seconds_in_bucket": 540}),
    ({"has_target": "true"}, "target IS NOT NULL", {}),
    ({"has_target": "false"}, "target IS NULL", {}),
    ({"train_type": "prod"}, "train_type = :train_type", {"train_type": "prod"}),
]


@pytest.mark.parametrize(("query", "clause", "params"), STOCK_FILTERS, ids=lambda v: str(v))
def test_stock_data_filter_becomes_its_where_clause(
    call: Call, fake_api: FakeDataApi, query: dict[str, Any], clause: str, params: dict[str, Any]
) -> None:
    """Given a filter, when /stock_data/ is listed, then the page query carries its clause and parameter."""
    fake_api.rows = [snapshot(time_id=26290, row_id="478_0_0", train_type="prod")]
    answered = call("stock_data", event("GET", "/stock_data/", query))
    assert answered.status == 200
    assert clause in fake_api.where()
    page_params = fake_api.calls[-1][1]
    assert params.items() <= page_params.items()


def test_the_original_range_is_inclusive_on_both_ends(call: Call, fake_api: FakeDataApi) -> None:
    """Given start_date_id=3 and end_date_id=5 (the original's paging client), then the query is the inclusive
    range 3..5 and the page envelope is the original's."""
    answered = call("stock_data", event("GET", "/stock_data/", {"start_date_id": 3, "end_date_id": 5}))
    assert fake_api.where() == "date_id >= :date_id_from AND date_id <= :date_id_to"
    assert answered.body == {"total_results": 0, "total_pages": 0, "page": 1, "page_size": 100, "data": []}


def test_rows_carry_their_train_type(call: Call, fake_api: FakeDataApi) -> None:
    """Given a stored row tagged "demo_27", when listed, then the row carries train_type."""
    fake_api.rows = [snapshot(time_id=26290, row_id="478_0_0", train_type="demo_27")]
    answered = call("stock_data", event("GET", "/stock_data/"))
    assert answered.body["data"][0]["train_type"] == "demo_27"


@pytest.mark.parametrize("value", ["", "x" * 33, "pr od", "prod;drop"])
def test_a_malformed_train_type_filter_is_refused(call: Call, value: str) -> None:
    answered = call("stock_data", event("GET", "/stock_data/", {"train_type": value}))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == "train_type"


# ------------------------------------------------------------------ POST /stock_data/


def test_posted_rows_are_stored_with_their_train_type(call: Call, fake_api: FakeDataApi) -> None:
    """Given two complete rows tagged "prod", when posted, then 201 {"rows": 2, "committed": true} and the
    upsert carries train_type for each."""
    rows = [snapshot(train_type="prod"), snapshot(stock_id=1, train_type="prod")]
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": rows}))
    assert (answered.status, answered.body) == (201, {"rows": 2, "committed": True})
    (sql, param_sets), *_ = fake_api.batches
    assert "train_type" in sql
    assert [p["train_type"] for p in param_sets] == ["prod", "prod"]


def test_commit_false_validates_and_stores_nothing(call: Call, fake_api: FakeDataApi) -> None:
    """Given the stream's envelope with commit false, when posted, then 200 {"rows": 1, "committed": false}
    and no statement reaches the database."""
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": [snapshot()], "commit": False}))
    assert (answered.status, answered.body) == (200, {"rows": 1, "committed": False})
    assert fake_api.calls == [] and fake_api.batches == []


def test_commit_false_refuses_an_invalid_row_like_commit_true(call: Call, fake_api: FakeDataApi) -> None:
    body = {"data": [snapshot(imbalance_buy_sell_flag=2)], "commit": False}
    answered = call("stock_data", event("POST", "/stock_data/", body=body))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == "data.0.imbalance_buy_sell_flag"


def test_bare_nan_tokens_are_nulls(call: Call, fake_api: FakeDataApi) -> None:
    """Given the original producer's JSON (bare NaN for a missing price), then the row is stored with null."""
    text = json.dumps({"data": [snapshot()]}).replace("null", "NaN")
    answered = call("stock_data", event("POST", "/stock_data/", body=text))
    assert answered.status == 201
    assert fake_api.batches[0][1][0]["far_price"] is None


@pytest.mark.parametrize("missing", ["imbalance_size", "far_price", "wap", "bid_size", "matched_size"])
def test_a_posted_row_without_a_feature_column_is_refused(
    call: Call, fake_api: FakeDataApi, missing: str
) -> None:
    """Given a row without one feature column, then 422 naming it (a row's keys alone never null features)."""
    row = snapshot()
    del row[missing]
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": [row]}))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == f"data.0.{missing}"
    assert fake_api.batches == []


def test_two_rows_with_one_key_are_refused_naming_both(call: Call, fake_api: FakeDataApi) -> None:
    rows = [snapshot(), snapshot(stock_id=1), snapshot(wap=1.1)]
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": rows}))
    assert answered.status == 400
    assert answered.body["errors"] == [
        {"field": "data.2", "location": "body", "message": "same key as data.0"}
    ]
    assert fake_api.batches == []


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"stock_id": True}, "data.0.stock_id"),
        ({"date_id": "478"}, "data.0.date_id"),
        ({"seconds_in_bucket": 10.0}, "data.0.seconds_in_bucket"),
        ({"train_type": 5}, "data.0.train_type"),
        ({"colour": "red"}, "data.0.colour"),
    ],
)
def test_posted_rows_are_never_coerced(call: Call, override: dict[str, Any], field: str) -> None:
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": [snapshot(**override)]}))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == field


def test_commit_must_be_a_boolean(call: Call) -> None:
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": [snapshot()], "commit": 1}))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == "commit"


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "text/plain",
    ],
)
def test_a_body_that_is_not_json_is_415(call: Call, content_type: str) -> None:
    answered = call(
        "stock_data", event("POST", "/stock_data/", body="data=1", headers={"content-type": content_type})
    )
    assert answered.status == 415
    assert answered.body["errors"][0]["field"] == "content-type"


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_50000_deep_is_400(call: Call, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    answered = call("stock_data", event("POST", "/stock_data/", body=opening * 50_000 + closing * 50_000))
    assert answered.status == 400
    assert answered.body["message"] == "invalid body"


def test_a_value_the_database_refuses_is_400_without_postgresql_text(
    call: Call, fake_api: FakeDataApi
) -> None:
    refused = database_error_from_message(
        'ERROR: new row for relation "stock_data" violates check constraint "stock_data_wap_check"\n'
        "  Detail: Failing row contains (...).; SQLState: 23514",
        code="DatabaseErrorException",
    )
    fake_api.answers.append(lambda sql, params: refused)
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": [snapshot()]}))
    assert answered.status == 400
    assert answered.body["errors"][0]["field"] == "wap"
    assert "constraint" not in json.dumps(answered.body) and "relation" not in json.dumps(answered.body)


def test_a_database_that_does_not_answer_is_503(call: Call, fake_api: FakeDataApi) -> None:
    fake_api.answers.append(lambda sql, params: TransientDatabaseError("resuming", attempts=10))
    answered = call("stock_data", event("GET", "/stock_data/"))
    assert answered.status == 503
    assert answered.headers["retry-after"] == "5"


# ------------------------------------------------------------------ /date_mappings/

DATE_FILTERS = [
    ({"date_id": 4}, "date_id = :date_id", {"date_id": 4}),
    ({"date": "2023-09-19"}, "trading_date = :date", {"date": "2023-09-19"}),
    ({"date_from": "2023-09-01"}, "trading_date >= :date_from", {"date_from": "2023-09-01"}),
    ({"date_to": "2023-09-30"}, "trading_date <= :date_to", {"date_to": "2023-09-30"}),
]


@pytest.mark.parametrize(("query", "clause", "params"), DATE_FILTERS, ids=lambda v: str(v))
def test_date_mapping_filter_becomes_its_where_clause(
    call: Call, fake_api: FakeDataApi, query: dict[str, Any], clause: str, params: dict[str, Any]
) -> None:
    answered = call("date_mappings", event("GET", "/date_mappings/", query))
    assert answered.status == 200
    assert clause in fake_api.where()
    sent = {k: str(v) for k, v in fake_api.calls[-1][1].items()}
    assert {k: str(v) for k, v in params.items()}.items() <= sent.items()


def test_date_mappings_carry_date_beside_trading_date(call: Call, fake_api: FakeDataApi) -> None:
    import datetime as dt

    day = dt.date(2023, 9, 19)
    fake_api.rows = [{"date_id": 478, "trading_date": day, "date": day}]
    answered = call("date_mappings", event("GET", "/date_mappings/"))
    assert answered.body["data"] == [{"date_id": 478, "trading_date": "2023-09-19", "date": "2023-09-19"}]


@pytest.mark.parametrize("value", ["86400", "2023-9-19", "2023-09-19T00:00:00"])
def test_a_date_filter_must_be_a_calendar_date(call: Call, value: str) -> None:
    answered = call("date_mappings", event("GET", "/date_mappings/", {"date": value}))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == "date"


@pytest.mark.parametrize(
    "row",
    [
        {"date_id": 1, "date": 86400},
        {"date_id": True, "date": "2023-09-19"},
        {"date_id": 1},
        {"date_id": 1, "date": "2023-09-19", "trading_date": "2023-09-20"},
        {"date_id": 1, "date": "2023-09-19", "weekday": "Tue"},
    ],
)
def test_a_posted_mapping_is_never_coerced(call: Call, fake_api: FakeDataApi, row: dict[str, Any]) -> None:
    answered = call("date_mappings", event("POST", "/date_mappings/", body={"data": [row]}))
    assert answered.status == 422
    assert fake_api.batches == []


def test_repeated_date_ids_in_one_post_are_refused(call: Call, fake_api: FakeDataApi) -> None:
    rows = [{"date_id": 1, "date": "2023-09-19"}, {"date_id": 1, "date": "2023-09-20"}]
    answered = call("date_mappings", event("POST", "/date_mappings/", body={"data": rows}))
    assert answered.status == 400
    assert answered.body["errors"][0]["field"] == "data.1"


def test_a_trading_date_taken_by_another_date_id_is_409_without_postgresql_text(
    call: Call, fake_api: FakeDataApi
) -> None:
    unique = database_error_from_message(
        'ERROR: duplicate key value violates unique constraint "date_mapping_trading_date_key"\n'
        "  Detail: Key (trading_date)=(2023-09-19) already exists.; SQLState: 23505",
        code="DatabaseErrorException",
    )
    fake_api.answers.append(lambda sql, params: unique)
    answered = call(
        "date_mappings",
        event("POST", "/date_mappings/", body={"data": [{"date_id": 2, "date": "2023-09-19"}]}),
    )
    assert answered.status == 409
    text = json.dumps(answered.body)
    assert "date_mapping_trading_date_key" not in text and "duplicate key" not in text


# ------------------------------------------------------------------ /models/

MODEL_FILTERS = [
    ({"name": "m"}, "name = :name", {"name": "m"}),
    ({"model_name": "m"}, "name = :model_name", {"model_name": "m"}),
    ({"model_id": 3}, "id = :model_id", {"model_id": 3}),
]


@pytest.mark.parametrize(("query", "clause", "params"), MODEL_FILTERS, ids=lambda v: str(v))
def test_model_filter_becomes_its_where_clause(
    call: Call, fake_api: FakeDataApi, query: dict[str, Any], clause: str, params: dict[str, Any]
) -> None:
    answered = call("models", event("GET", "/models/", query))
    assert answered.status == 200
    assert clause in fake_api.where()
    assert params.items() <= fake_api.calls[-1][1].items()


def test_the_original_model_body_registers_a_model(call: Call, fake_api: FakeDataApi) -> None:
    """Given the original training service's body, then 201 and a record with both sets of names; the key
    becomes a URI in the stack's bucket."""
    body = {
        "model_name": "api-test-4",
        "model_artifact_path": "trained_models/api-test-4.ubj",
        "date_id": 380,
    }
    fake_api.answers.append(
        lambda sql, p: (
            Result(records=[{**p, "id": 7, "version": 1, "created_at": "2026-11-26T12:00:00Z"}])
            if "INSERT INTO model" in sql
            else None
        )
    )
    answered = call("models", event("POST", "/models/", body=body))
    assert answered.status == 201, answered.body
    record = answered.body
    assert record["artifact_uri"] == f"s3://{BUCKET}/trained_models/api-test-4.ubj"
    assert (record["model_id"], record["model_name"], record["model_artifact_path"], record["date_id"]) == (
        7,
        "api-test-4",
        "trained_models/api-test-4.ubj",
        380,
    )
    assert (record["name"], record["last_trained_date_id"], record["feature_set"]) == (
        "api-test-4",
        380,
        "original",
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model_name": "m", "version": True, "model_artifact_path": "k"}, 422, "version"),
        ({"model_name": "m", "model_artifact_path": "k", "date_id": "380"}, 422, "date_id"),
        ({"model_name": "m", "model_artifact_path": "k", "owner": "me"}, 422, "owner"),
        ({"model_artifact_path": "k"}, 422, "name"),
        ({"model_name": "m"}, 422, "artifact_uri"),
        ({"name": "a", "model_name": "b", "model_artifact_path": "k"}, 422, "model_name"),
    ],
)
def test_a_model_body_is_strict(call: Call, body: dict[str, Any], status: int, field: str) -> None:
    answered = call("models", event("POST", "/models/", body=body))
    assert answered.status == status
    assert answered.body["errors"][0]["field"] == field


def test_an_existing_model_version_is_409_without_constraint_names(call: Call, fake_api: FakeDataApi) -> None:
    fake_api.answers.append(lambda sql, params: UNIQUE if "INSERT INTO model" in sql else None)
    body = {"name": "m", "version": 1, "artifact_uri": f"s3://{BUCKET}/k", "feature_set": "v1"}
    answered = call("models", event("POST", "/models/", body=body))
    assert answered.status == 409
    assert "model_name_version_key" not in json.dumps(answered.body)


# ------------------------------------------------------------------ /model-inferences/

INFERENCE_FILTERS = [
    ({"model_id": 3}, "model_id = :model_id", {"model_id": 3}),
    ({"date_id": 4}, "date_id = :date_id", {"date_id": 4}),
]


@pytest.mark.parametrize(("query", "clause", "params"), INFERENCE_FILTERS, ids=lambda v: str(v))
def test_inference_filter_becomes_its_where_clause(
    call: Call, fake_api: FakeDataApi, query: dict[str, Any], clause: str, params: dict[str, Any]
) -> None:
    answered = call("model_inferences", event("GET", "/model-inferences/", query))
    assert answered.status == 200
    assert clause in fake_api.where()
    assert params.items() <= fake_api.calls[-1][1].items()


def test_the_original_inference_body_is_recorded_with_its_key(call: Call, fake_api: FakeDataApi) -> None:
    body = {"model_id": 3, "date_id": 380, "predictions": "inference_data/inference_3_380.csv"}
    answered = call("model_inferences", event("POST", "/model-inferences/", body=body))
    assert answered.status == 201, answered.body
    assert answered.body["predictions"] == "inference_data/inference_3_380.csv"
    assert answered.body["predictions_uri"] == f"s3://{BUCKET}/inference_data/inference_3_380.csv"
    assert answered.body["n_rows"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"model_id": True, "date_id": 1, "predictions": "k"},
        {"model_id": 1, "date_id": 1, "predictions": "k", "n_rows": 1.0},
        {"model_id": 1, "date_id": 1, "predictions": "k", "extra": 1},
    ],
)
def test_an_inference_body_is_strict(call: Call, body: dict[str, Any]) -> None:
    answered = call("model_inferences", event("POST", "/model-inferences/", body=body))
    assert answered.status == 422


def test_an_inference_of_an_unknown_model_is_400_naming_model_id(call: Call, fake_api: FakeDataApi) -> None:
    fake_api.answers.append(lambda sql, params: Result(records=[]) if "FROM model WHERE id" in sql else None)
    body = {"model_id": 5, "date_id": 1, "predictions": "k"}
    answered = call("model_inferences", event("POST", "/model-inferences/", body=body))
    assert answered.status == 400
    assert answered.body["errors"][0]["field"] == "model_id"


# ------------------------------------------------------------------ /healthcheck/


@pytest.mark.parametrize("path", ["/healthcheck", "/healthcheck/"])
def test_healthcheck_says_the_database_is_reachable(call: Call, fake_api: FakeDataApi, path: str) -> None:
    answered = call("healthcheck", event("GET", path))
    assert (answered.status, answered.body) == (200, {"status": "ok", "database": "reachable"})
    assert fake_api.calls == [("SELECT 1 AS one", {})]


def test_healthcheck_is_503_when_the_database_does_not_answer(call: Call, fake_api: FakeDataApi) -> None:
    fake_api.answers.append(lambda sql, params: TransientDatabaseError("connection refused", attempts=3))
    answered = call("healthcheck", event("GET", "/healthcheck/"))
    assert answered.status == 503
    assert answered.body["database"] == "unreachable"


# ------------------------------------------------------------------ strict ids in queries


@pytest.mark.parametrize("value", ["1.0", "1_000", "+1", " 1", "1e2", "true", "-1"])
@pytest.mark.parametrize(
    ("function", "path", "name"),
    [
        ("stock_data", "/stock_data/", "date_id"),
        ("stock_data", "/stock_data/", "start_date_id"),
        ("stock_data", "/stock_data/", "page"),
        ("date_mappings", "/date_mappings/", "date_id"),
        ("models", "/models/", "model_id"),
        ("model_inferences", "/model-inferences/", "model_id"),
    ],
)
def test_an_id_in_the_query_is_digits_only(
    call: Call, function: str, path: str, name: str, value: str
) -> None:
    """Given an id written as anything but digits, then 422 naming it (never read as a nearby number)."""
    answered = call(function, event("GET", path, {name: value}))
    assert answered.status == 422
    assert answered.body["errors"][0]["field"] == name


def test_a_get_with_a_body_ignores_it(call: Call) -> None:
    answered = call(
        "stock_data", event("GET", "/stock_data/", body="x", headers={"content-type": "text/plain"})
    )
    assert answered.status == 200
