"""The Data API client on its own: parameter typing, decoding, retries, error mapping, size limits.

A real boto3 ``rds-data`` client is used throughout; nothing leaves the process.  Either botocore's
``Stubber`` answers, or a tiny fake transport (a ``before-send`` hook) that sees the exact bytes
botocore would put on the wire and answers like the service.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config
from botocore.stub import Stubber

from closecast.db import errors
from closecast.db.data_api import MAX_REQUEST_BYTES, DataApi, to_parameter
from closecast.db.errors import parse_database_message

pytestmark = pytest.mark.unit

CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:closecast"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:closecast-db"
DB = "closecast"


def rds_data_client(*, validate: bool = True) -> Any:
    return boto3.client(
        "rds-data",
        region_name="us-east-1",
        endpoint_url="http://data-api.invalid",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def stubbed(sleeps: Sleeps) -> tuple[DataApi, Stubber]:
    client = rds_data_client()
    stubber = Stubber(client)
    stubber.activate()
    return DataApi(client, CLUSTER, SECRET, DB, sleep=sleeps), stubber


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


Answer = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any], str | None]]


class FakeTransport:
    """Answers rds-data calls in-process; records each request's serialized size and body."""

    def __init__(self, client: Any, answer: Answer) -> None:
        self.requests: list[tuple[str, int, dict[str, Any]]] = []
        self._answer = answer
        client.meta.events.register("before-send.rds-data", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        operation = request.url.rsplit("/", 1)[-1]
        parsed = json.loads(body)
        self.requests.append((operation, len(body), parsed))
        status, payload, error_type = self._answer(operation, parsed)
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/json"
        if error_type:
            headers["x-amzn-ErrorType"] = error_type
        return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))


# ---------------------------------------------------------------------------------------------
# Parameters


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"value": {"isNull": True}}),
        (True, {"value": {"booleanValue": True}}),
        (-(2**63), {"value": {"longValue": -(2**63)}}),
        (1.0000001, {"value": {"doubleValue": 1.0000001}}),
        ('l\'été "x"', {"value": {"stringValue": 'l\'été "x"'}}),
        (dt.date(2024, 2, 29), {"value": {"stringValue": "2024-02-29"}, "typeHint": "DATE"}),
        (
            dt.datetime(2024, 2, 29, 13, 5, 9, 7),
            {"value": {"stringValue": "2024-02-29 13:05:09.000007"}, "typeHint": "TIMESTAMP"},
        ),
        (dt.time(9, 30, 0, 5), {"value": {"stringValue": "09:30:00.000005"}, "typeHint": "TIME"}),
        (Decimal("12.3400"), {"value": {"stringValue": "12.3400"}, "typeHint": "DECIMAL"}),
        ({"a": [1, None]}, {"value": {"stringValue": '{"a":[1,null]}'}, "typeHint": "JSON"}),
        (b"\x00\xff", {"value": {"blobValue": b"\x00\xff"}}),
        (
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            {"value": {"stringValue": "12345678-1234-5678-1234-567812345678"}, "typeHint": "UUID"},
        ),
    ],
)
def test_python_values_become_typed_parameters(value: Any, expected: dict[str, Any]) -> None:
    # Given a plain Python value / When it is made a parameter / Then it carries the Data API field and hint
    assert to_parameter("p", value) == {"name": "p", **expected}


def test_aware_datetime_is_sent_as_utc() -> None:
    # Given 10:00 in UTC+02:00
    value = dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    # When it is made a parameter
    param = to_parameter("t", value)
    # Then the wire value is 08:00 UTC, typed TIMESTAMP
    assert param["value"] == {"stringValue": "2024-01-01 08:00:00.000000"}
    assert param["typeHint"] == "TIMESTAMP"


@pytest.mark.parametrize("value", [math.nan, math.inf, 2**63])
def test_values_the_data_api_cannot_carry_are_refused(value: Any) -> None:
    # Given NaN, infinity or a 65-bit integer / When made a parameter / Then it is refused before sending
    with pytest.raises(ValueError):
        to_parameter("x", value)


# ---------------------------------------------------------------------------------------------
# Decoding


def test_records_decode_to_python_types_by_column_metadata(stubbed: tuple[DataApi, Stubber]) -> None:
    # Given a response with one column of each kind and its column metadata
    api, stubber = stubbed
    columns = ["n", "f", "t", "d", "ts", "j", "num", "b", "arr", "nil", "ok"]
    types = [
        "int8",
        "float8",
        "text",
        "date",
        "timestamptz",
        "jsonb",
        "numeric",
        "bytea",
        "_int4",
        "text",
        "bool",
    ]
    stubber.add_response(
        "execute_statement",
        {
            "columnMetadata": [{"name": c, "typeName": t} for c, t in zip(columns, types, strict=True)],
            "records": [
                [
                    {"longValue": 9223372036854775807},
                    {"doubleValue": 1e-300},
                    {"stringValue": "naïve"},
                    {"stringValue": "2024-03-01"},
                    {"stringValue": "2024-03-01 12:00:00.5"},
                    {"stringValue": '{"a": {"b": [1, 2.5]}}'},
                    {"stringValue": "0.10"},
                    {"blobValue": b"\x01\x02"},
                    {"arrayValue": {"longValues": [1, 2]}},
                    {"isNull": True},
                    {"booleanValue": False},
                ]
            ],
            "numberOfRecordsUpdated": 0,
        },
    )
    # When it is executed
    result = api.execute("SELECT ...")
    # Then every value is the Python type the column says
    assert result.records == [
        {
            "n": 9223372036854775807,
            "f": 1e-300,
            "t": "naïve",
            "d": dt.date(2024, 3, 1),
            "ts": dt.datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=dt.UTC),
            "j": {"a": {"b": [1, 2.5]}},
            "num": Decimal("0.10"),
            "b": b"\x01\x02",
            "arr": [1, 2],
            "nil": None,
            "ok": False,
        }
    ]


def test_execute_asks_for_metadata_and_sends_typed_parameters(stubbed: tuple[DataApi, Stubber]) -> None:
    # Given a statement with parameters
    api, stubber = stubbed
    stubber.add_response(
        "execute_statement",
        {"numberOfRecordsUpdated": 1},
        {
            "resourceArn": CLUSTER,
            "secretArn": SECRET,
            "database": DB,
            "sql": "UPDATE t SET d = :d WHERE id = :id",
            "parameters": [
                {"name": "d", "value": {"stringValue": "2024-01-02"}, "typeHint": "DATE"},
                {"name": "id", "value": {"longValue": 7}},
            ],
            "includeResultMetadata": True,
        },
    )
    # When executed / Then the request is exactly the typed one and the update count comes back
    result = api.execute("UPDATE t SET d = :d WHERE id = :id", {"d": dt.date(2024, 1, 2), "id": 7})
    assert result.updated == 1
    stubber.assert_no_pending_responses()


# ---------------------------------------------------------------------------------------------
# Retries


def test_resuming_cluster_is_retried_with_growing_backoff(
    stubbed: tuple[DataApi, Stubber], sleeps: Sleeps
) -> None:
    # Given a cluster that answers DatabaseResumingException three times, then succeeds
    api, stubber = stubbed
    for _ in range(3):
        stubber.add_client_error(
            "execute_statement",
            service_error_code="DatabaseResumingException",
            service_message="The Aurora DB instance db-1 is resuming after being auto-paused.",
            http_status_code=400,
        )
    stubber.add_response("execute_statement", {"records": [], "numberOfRecordsUpdated": 0})
    # When a statement runs
    api.execute("SELECT 1")
    # Then it waited three times, each step longer on average (equal jitter keeps at least half a step)
    assert len(sleeps.delays) == 3
    assert sleeps.delays[0] <= 0.25 and sleeps.delays[1] >= 0.25 and sleeps.delays[2] >= 0.5


def test_resuming_that_never_ends_raises_database_resuming(sleeps: Sleeps) -> None:
    # Given a cluster that keeps resuming and a client allowed 4 attempts
    client = rds_data_client()
    stubber = Stubber(client)
    for _ in range(4):
        stubber.add_client_error("execute_statement", "DatabaseResumingException", "resuming", 400)
    stubber.activate()
    api = DataApi(client, CLUSTER, SECRET, DB, max_attempts=4, sleep=sleeps)
    # When a statement runs / Then a typed transient error says how many attempts were made
    with pytest.raises(errors.DatabaseResuming) as caught:
        api.execute("SELECT 1")
    assert caught.value.attempts == 4
    assert isinstance(caught.value, errors.TransientDatabaseError)


def test_backoff_total_is_bounded_by_the_retry_budget(sleeps: Sleeps) -> None:
    # Given a budget of 30 s and a service that throttles forever
    client = rds_data_client()
    stubber = Stubber(client)
    for _ in range(50):
        stubber.add_client_error("execute_statement", "ThrottlingException", "slow down", 400)
    stubber.activate()
    api = DataApi(client, CLUSTER, SECRET, DB, max_attempts=50, max_retry_seconds=30.0, sleep=sleeps)
    # When a statement runs / Then it gives up without waiting more than the budget
    with pytest.raises(errors.TransientDatabaseError):
        api.execute("SELECT 1")
    assert sum(sleeps.delays) <= 30.0
    assert sum(sleeps.delays) >= 10.0


def test_statement_timeout_of_a_write_is_not_retried(
    stubbed: tuple[DataApi, Stubber], sleeps: Sleeps
) -> None:
    # Given an UPDATE that times out (it may or may not have been applied)
    api, stubber = stubbed
    stubber.add_client_error("execute_statement", "StatementTimeoutException", "timed out", 400)
    # When executed / Then the timeout surfaces at once, with no retry
    with pytest.raises(errors.StatementTimeout):
        api.execute("UPDATE stock_data SET target = 0")
    assert sleeps.delays == []


def test_internal_error_on_a_read_is_retried(stubbed: tuple[DataApi, Stubber], sleeps: Sleeps) -> None:
    # Given a SELECT that meets one internal server error
    api, stubber = stubbed
    stubber.add_client_error("execute_statement", "InternalServerErrorException", "", 500)
    stubber.add_response("execute_statement", {"records": []})
    # When executed / Then it is retried once and succeeds
    assert api.execute("SELECT 1").records == []
    assert len(sleeps.delays) == 1


# ---------------------------------------------------------------------------------------------
# Error mapping


def test_sql_error_carries_postgres_message_sqlstate_and_position(stubbed: tuple[DataApi, Stubber]) -> None:
    # Given Aurora's answer for a missing table
    api, stubber = stubbed
    message = 'ERROR: relation "nope" does not exist\n  Position: 15; SQLState: 42P01'
    stubber.add_client_error("execute_statement", "DatabaseErrorException", message, 400)
    # When executed / Then the error is typed, with the parts parsed out
    with pytest.raises(errors.UndefinedTable) as caught:
        api.execute("SELECT * FROM nope")
    assert caught.value.sqlstate == "42P01"
    assert caught.value.pg_message == 'relation "nope" does not exist'
    assert caught.value.position == 15


def test_unique_violation_is_its_own_type_with_constraint_and_detail(
    stubbed: tuple[DataApi, Stubber],
) -> None:
    # Given Aurora's answer for a duplicate key
    api, stubber = stubbed
    message = (
        'ERROR: duplicate key value violates unique constraint "model_name_version_key"\n'
        "  Detail: Key (name, version)=(xgb, 1) already exists.; SQLState: 23505"
    )
    stubber.add_client_error("execute_statement", "DatabaseErrorException", message, 400)
    # When executed / Then UniqueViolation names the constraint and keeps the detail
    with pytest.raises(errors.UniqueViolation) as caught:
        api.execute("INSERT INTO model ...")
    assert caught.value.constraint == "model_name_version_key"
    assert caught.value.detail == "Key (name, version)=(xgb, 1) already exists."


@pytest.mark.parametrize("code", ["BadRequestException", "DatabaseErrorException"])
def test_oversized_result_maps_to_response_too_large(stubbed: tuple[DataApi, Stubber], code: str) -> None:
    # Given the service refusing a result over 1 MiB (reported under either code)
    api, stubber = stubbed
    text = "Database returned more than the allowed response size limit"
    stubber.add_client_error("execute_statement", code, text, 400)
    # When executed / Then ResponseTooLarge
    with pytest.raises(errors.ResponseTooLarge):
        api.execute("SELECT * FROM stock_data")


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("TransactionNotFoundException", "Transaction abc is not found", errors.TransactionNotFound),
        ("BadRequestException", "Transaction abc is not found", errors.TransactionNotFound),
        ("NotFoundException", "Transaction abc isn't found", errors.TransactionNotFound),
        ("HttpEndpointNotEnabledException", "HttpEndpoint is not enabled", errors.ConfigurationError),
        ("SecretsErrorException", "can't find the specified secret", errors.ConfigurationError),
        ("AccessDeniedException", "denied", errors.ConfigurationError),
        ("BadRequestException", "ERROR: boom; SQLState: XX000", errors.DatabaseError),
        ("BadRequestException", "something else", errors.DataApiError),
    ],
)
def test_service_errors_map_to_typed_errors(
    stubbed: tuple[DataApi, Stubber], code: str, message: str, expected: type[Exception]
) -> None:
    # Given an error answer / When executed / Then the matching typed error is raised
    api, stubber = stubbed
    stubber.add_client_error("execute_statement", code, message, 400)
    with pytest.raises(expected):
        api.execute("SELECT 1", idempotent=False)


def test_message_parser_splits_every_part() -> None:
    # Given a message with detail, hint, position and context
    message = (
        'ERROR: column "x" does not exist\n  Hint: Perhaps you meant "y".\n  Position: 8\n'
        "  Where: PL/pgSQL function f() line 3; SQLState: 42703"
    )
    # When parsed / Then each part is separate
    parts = parse_database_message(message)
    assert parts["sqlstate"] == "42703"
    assert parts["pg_message"] == 'column "x" does not exist'
    assert parts["hint"] == 'Perhaps you meant "y".'
    assert parts["position"] == 8


# ---------------------------------------------------------------------------------------------
# Transactions


def test_transaction_commits_on_success(stubbed: tuple[DataApi, Stubber]) -> None:
    # Given a transaction that does one statement
    api, stubber = stubbed
    stubber.add_response("begin_transaction", {"transactionId": "tx1"})
    stubber.add_response("execute_statement", {"numberOfRecordsUpdated": 1})
    stubber.add_response("commit_transaction", {"transactionStatus": "Transaction Committed"})
    # When the block ends normally / Then it is committed
    with api.transaction() as tid:
        api.execute("INSERT ...", transaction_id=tid)
    stubber.assert_no_pending_responses()


def test_transaction_rolls_back_and_reraises_on_error(stubbed: tuple[DataApi, Stubber]) -> None:
    # Given a transaction whose statement fails, and whose rollback finds the transaction already ended
    api, stubber = stubbed
    stubber.add_response("begin_transaction", {"transactionId": "tx1"})
    stubber.add_client_error("execute_statement", "DatabaseErrorException", "ERROR: x; SQLState: 23514", 400)
    stubber.add_client_error(
        "rollback_transaction", "TransactionNotFoundException", "Transaction tx1 is not found", 404
    )
    # When the block raises / Then the original error propagates (not the rollback's)
    with pytest.raises(errors.CheckViolation), api.transaction() as tid:
        api.execute("INSERT ...", transaction_id=tid)
    stubber.assert_no_pending_responses()


# ---------------------------------------------------------------------------------------------
# Size limits


def _stock_row(i: int) -> dict[str, Any]:
    return {
        "stock_id": i % 200,
        "date_id": i // 11_000,
        "seconds_in_bucket": (i // 200) % 55 * 10,
        "imbalance_size": 3753451.43 + i,
        "imbalance_buy_sell_flag": -1,
        "reference_price": 0.999875,
        "matched_size": 11548975.43,
        "far_price": None,
        "near_price": None,
        "bid_price": 0.999875,
        "bid_size": 22940.0,
        "ask_price": 1.00005,
        "ask_size": 9177.6,
        "wap": 1.0,
        "target": -3.029704,
        "time_id": i // 200,
        "row_id": f"{i // 11_000}_{(i // 200) % 55 * 10}_{i % 200}",
    }


def test_batch_is_split_into_requests_under_four_mib() -> None:
    # Given 20,000 stock rows (about 25 MB of parameters) and a service that accepts any batch
    client = rds_data_client(validate=False)  # botocore's validation of 20k sets is slow and not under test
    transport = FakeTransport(
        client,
        lambda op, body: (
            200,
            {"updateResults": [{"generatedFields": []} for _ in body["parameterSets"]]},
            None,
        ),
    )
    api = DataApi(client, CLUSTER, SECRET, DB, sleep=Sleeps())
    rows = [_stock_row(i) for i in range(20_000)]
    # When they are batch-executed
    executed = api.batch_execute("INSERT INTO stock_data VALUES (:stock_id)", rows)
    # Then several requests went out, each under 4 MiB on the wire, carrying every row once, in order
    sizes = [size for op, size, _ in transport.requests]
    assert len(sizes) >= 5
    assert max(sizes) < MAX_REQUEST_BYTES
    assert executed == 20_000
    sent_ids = [
        s[-1]["value"]["stringValue"] for _, _, body in transport.requests for s in body["parameterSets"]
    ]
    assert sent_ids == [r["row_id"] for r in rows]
    # and packing is tight: all but the last request use most of the budget
    assert min(sizes[:-1]) > 3 * 1024 * 1024


def test_one_parameter_set_over_the_limit_is_refused_before_sending() -> None:
    # Given a single parameter set of 5 MB
    client = rds_data_client()
    transport = FakeTransport(client, lambda op, body: (200, {"updateResults": []}, None))
    api = DataApi(client, CLUSTER, SECRET, DB)
    # When batch-executed / Then RequestTooLarge, and nothing was sent
    with pytest.raises(errors.RequestTooLarge):
        api.batch_execute("INSERT INTO t VALUES (:b)", [{"b": "x" * 5_000_000}])
    assert transport.requests == []


def test_request_over_four_mib_is_refused_by_execute() -> None:
    # Given a 5 MB blob parameter (7 MB as base64)
    client = rds_data_client()
    transport = FakeTransport(client, lambda op, body: (200, {}, None))
    api = DataApi(client, CLUSTER, SECRET, DB)
    # When executed / Then RequestTooLarge, and nothing was sent
    with pytest.raises(errors.RequestTooLarge):
        api.execute("INSERT INTO t VALUES (:b)", {"b": b"\0" * 5_000_000})
    assert transport.requests == []


def test_query_halves_a_page_the_service_refuses_and_returns_every_row_in_order() -> None:
    # Given 2,500 rows and a service that refuses any page of more than 300 rows
    total = 2_500

    def answer(op: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        params = {p["name"]: p["value"] for p in body["parameters"]}
        limit, offset = params["_limit"]["longValue"], params["_offset"]["longValue"]
        if limit > 300:
            return (
                400,
                {"message": "Database returned more than the allowed response size limit"},
                ("BadRequestException"),
            )
        rows = [[{"longValue": i}] for i in range(offset, min(total, offset + limit))]
        return 200, {"columnMetadata": [{"name": "id", "typeName": "int8"}], "records": rows}, None

    client = rds_data_client()
    transport = FakeTransport(client, answer)
    api = DataApi(client, CLUSTER, SECRET, DB)
    # When read with query() starting at 1,000 rows a page
    rows = api.query("SELECT id FROM t ORDER BY id", page_size=1000, max_page_size=1000)
    # Then every row came back once, in order, and the SQL was wrapped for paging
    assert [r["id"] for r in rows] == list(range(total))
    assert transport.requests[0][2]["sql"] == (
        "SELECT * FROM (SELECT id FROM t ORDER BY id) AS _q LIMIT :_limit OFFSET :_offset"
    )
    refused = [r for r in transport.requests if r[2]["parameters"][0]["value"]["longValue"] > 300]
    assert len(refused) == 2  # 1000 and 500 refused, 250 accepted


def test_blob_parameters_travel_base64_encoded() -> None:
    # Given a bytes parameter / When sent / Then the JSON body carries it base64-encoded (as botocore does)
    client = rds_data_client()
    transport = FakeTransport(client, lambda op, body: (200, {"numberOfRecordsUpdated": 1}, None))
    DataApi(client, CLUSTER, SECRET, DB).execute("INSERT INTO t VALUES (:b)", {"b": b"\x00\x01"})
    assert (
        transport.requests[0][2]["parameters"][0]["value"]["blobValue"]
        == base64.b64encode(b"\x00\x01").decode()
    )
