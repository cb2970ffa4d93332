"""Error shapes of the local endpoint (as Aurora sends them) and the typed errors the client raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from closecast.db import errors
from closecast.db.data_api import DataApi
from closecast_tools.local.data_api import LocalDataApi, translate_placeholders

pytestmark = pytest.mark.integration


def test_undefined_table_carries_postgres_message_position_and_sqlstate(client: Any, target: Any) -> None:
    # Given a query on a missing table / When sent raw
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(**target.request(sql="SELECT * FROM no_such_table"))
    # Then HTTP 400 DatabaseErrorException with the JDBC-style message and SQLState
    error = caught.value.response["Error"]
    assert error["Code"] == "DatabaseErrorException"
    assert (
        error["Message"] == 'ERROR: relation "no_such_table" does not exist\n  Position: 15; SQLState: 42P01'
    )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_client_raises_undefined_table(api: DataApi) -> None:
    # Given the same query through the client / Then UndefinedTable with the parsed parts
    with pytest.raises(errors.UndefinedTable) as caught:
        api.execute("SELECT * FROM no_such_table")
    assert (caught.value.sqlstate, caught.value.position) == ("42P01", 15)
    assert caught.value.pg_message == 'relation "no_such_table" does not exist'


def test_unique_violation_names_constraint_and_key(api: DataApi) -> None:
    # Given a date mapping that already exists
    api.execute(
        "INSERT INTO date_mapping (date_id, trading_date) VALUES (:d, :t::date)",
        {"d": 70_001, "t": "2031-01-02"},
    )
    # When inserted again
    with pytest.raises(errors.UniqueViolation) as caught:
        api.execute(
            "INSERT INTO date_mapping (date_id, trading_date) VALUES (:d, :t::date)",
            {"d": 70_001, "t": "2031-01-03"},
        )
    # Then 23505, the constraint, and PostgreSQL's detail
    assert caught.value.sqlstate == "23505"
    assert caught.value.constraint == "date_mapping_pkey"
    assert caught.value.detail == "Key (date_id)=(70001) already exists."


def test_check_violation_names_the_constraint(api: DataApi) -> None:
    # Given a stock row with a negative price / When inserted / Then CheckViolation naming the column's check
    with pytest.raises(errors.CheckViolation) as caught:
        api.execute(
            "INSERT INTO stock_data (stock_id, date_id, seconds_in_bucket, imbalance_buy_sell_flag, "
            "bid_price, time_id, row_id) VALUES (1, 1, 0, 0, :p, 55, '1_0_1')",
            {"p": -1.0},
        )
    assert caught.value.constraint == "stock_data_bid_price_check"


def test_position_points_into_the_sql_as_written(api: DataApi) -> None:
    # Given an error after a long :parameter name (translated to $1 on the wire to PostgreSQL)
    sql = "SELECT :a_rather_long_parameter_name + nope_column"
    with pytest.raises(errors.DatabaseError) as caught:
        api.execute(sql, {"a_rather_long_parameter_name": 1})
    # Then the position is in the caller's SQL
    assert caught.value.position == sql.index("nope_column") + 1


@pytest.mark.parametrize(
    ("arn_field", "code"),
    [("resourceArn", "HttpEndpointNotEnabledException"), ("secretArn", "SecretsErrorException")],
)
def test_unknown_cluster_or_secret_is_refused(client: Any, target: Any, arn_field: str, code: str) -> None:
    # Given a request for another cluster or with another secret
    request = target.request(sql="SELECT 1")
    request[arn_field] = request[arn_field].replace("closecast-local", "someone-else")
    # When sent / Then refused with the service's error type
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(**request)
    assert caught.value.response["Error"]["Code"] == code


def test_client_with_wrong_arn_gets_configuration_error(client: Any, target: Any) -> None:
    # Given a client configured with the wrong cluster / When used / Then ConfigurationError, not retried
    api = DataApi(client, target.cluster_arn + "-typo", target.secret_arn, target.database)
    with pytest.raises(errors.ConfigurationError):
        api.execute("SELECT 1")


def test_unknown_database_is_refused(client: Any, target: Any) -> None:
    # Given another database name / When used / Then a database error 3D000
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(**target.request(sql="SELECT 1", database="other"))
    assert caught.value.response["Error"]["Message"].endswith("SQLState: 3D000")


def test_missing_parameter_is_a_database_error(api: DataApi) -> None:
    # Given SQL using :b without a value for it / When executed / Then a typed database error
    with pytest.raises(errors.DatabaseError) as caught:
        api.execute("SELECT :a + :b AS s", {"a": 1})
    assert caught.value.sqlstate == "22023"


def test_array_parameters_are_refused_like_aurora(client: Any, target: Any) -> None:
    # Given an arrayValue parameter / When sent / Then BadRequestException
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(
            **target.request(
                sql="SELECT :a", parameters=[{"name": "a", "value": {"arrayValue": {"longValues": [1]}}}]
            )
        )
    assert caught.value.response["Error"]["Code"] == "BadRequestException"


def test_placeholders_skip_casts_literals_comments_and_dollar_quotes() -> None:
    # Given SQL mixing :params with ::casts, ':x' literals, "quoted:ids", comments and $$ bodies
    sql = (
        "SELECT :a::int, ':not_param', E'\\':no', \"col:x\", $$ :no $$, $t$ :no $t$ -- :no\n"
        "/* :no /* nested :no */ */ , :b, :a"
    )
    # When translated / Then only the real parameters become $n, reusing numbers for repeats
    translated = translate_placeholders(sql)
    assert translated.names == ["a", "b"]
    assert translated.sql == sql.replace(":a::int", "$1::int").replace(", :b, :a", ", $2, $1")


def test_placeholder_translation_keeps_string_literals_intact(api: DataApi) -> None:
    # Given a literal containing ':name' next to a real parameter / When run / Then the literal is untouched
    rows = api.execute("SELECT ':x' AS lit, :x::text AS val, 'it''s :y' AS q", {"x": "v"}).records
    assert rows == [{"lit": ":x", "val": "v", "q": "it's :y"}]


def test_multiple_statements_in_one_call_are_refused(api: DataApi) -> None:
    # Given two statements in one call / When executed / Then a database error (one statement per call)
    with pytest.raises(errors.DatabaseError):
        api.execute("SELECT 1; SELECT 2")


@pytest.fixture
def impatient_endpoint(dsn: str, target: Any) -> Any:
    with LocalDataApi(
        dsn,
        cluster_arn=target.cluster_arn,
        secret_arn=target.secret_arn,
        database=target.database,
        statement_timeout_s=0.3,
    ) as local:
        yield local


def test_statement_timeout_is_reported_and_not_retried_for_writes(
    impatient_endpoint: LocalDataApi, target: Any, make_client: Callable[[str], Any]
) -> None:
    # Given an endpoint whose statement timeout is 0.3 s (45 s on Aurora)
    client = make_client(impatient_endpoint.url)
    # When a raw statement runs longer / Then StatementTimeoutException
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(**target.request(sql="SELECT pg_sleep(2)"))
    assert caught.value.response["Error"]["Code"] == "StatementTimeoutException"
    # and the client raises StatementTimeout at once for a non-idempotent statement
    sleeps: list[float] = []
    api = DataApi(client, target.cluster_arn, target.secret_arn, target.database, sleep=sleeps.append)
    with pytest.raises(errors.StatementTimeout):
        api.execute("SELECT pg_sleep(2)", idempotent=False)
    assert sleeps == []


def test_a_nul_character_in_text_is_refused_not_cut_short(api: DataApi) -> None:
    # Given text holding a NUL (PostgreSQL text cannot) / When bound / Then a data error (22021), as on Aurora,
    # rather than the text silently ending at the NUL
    with pytest.raises(errors.DatabaseError) as caught:
        api.execute("SELECT :s AS s", {"s": "abc\x00def"})
    assert caught.value.sqlstate == "22021"
    assert caught.value.is_data_error
