"""Least privilege in the database: the reader and writer roles of migration 0004, reached through the local
Data API with their own secrets, as the functions reach Aurora."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from closecast_tools.local.cloud import client

pytestmark = pytest.mark.integration


def run(cloud: Any, secret_key: str, sql: str) -> dict[str, Any]:
    rds = client("rds-data", cloud.state["data_api_endpoint_url"])
    answer: dict[str, Any] = rds.execute_statement(
        resourceArn=cloud.state["db_cluster_arn"],
        secretArn=cloud.state[secret_key],
        database=cloud.state["database"],
        sql=sql,
    )
    return answer


def refused(cloud: Any, secret_key: str, sql: str) -> str:
    with pytest.raises(ClientError) as caught:
        run(cloud, secret_key, sql)
    assert caught.value.response["Error"]["Code"] == "DatabaseErrorException"
    return str(caught.value.response["Error"]["Message"])


def test_each_secret_signs_in_as_its_own_role(local_cloud: Any) -> None:
    """Given the reader and writer secrets, then statements run as closecast_reader and closecast_writer."""
    for key, role in (
        ("db_reader_secret_arn", "closecast_reader"),
        ("db_writer_secret_arn", "closecast_writer"),
    ):
        records = run(local_cloud, key, "SELECT current_user")["records"]
        assert records == [[{"stringValue": role}]]


def test_the_reader_role_cannot_insert(local_cloud: Any) -> None:
    """Given the reader's secret (what the GET functions hold), when it tries an INSERT, then the database refuses
    it with PostgreSQL's permission error, as Aurora would through the Data API."""
    message = refused(
        local_cloud,
        "db_reader_secret_arn",
        "INSERT INTO date_mapping (date_id, trading_date) VALUES (30001, DATE '2030-01-02')",
    )
    assert "permission denied for table date_mapping" in message and "SQLState: 42501" in message
    assert run(local_cloud, "db_reader_secret_arn", "SELECT count(*) FROM stock_data")["records"]


def test_the_writer_role_writes_rows_but_no_ddl_and_not_the_migrations_record(local_cloud: Any) -> None:
    """Given the writer's secret, then INSERT/UPDATE/DELETE work, while CREATE TABLE, DROP TABLE and changing
    schema_migrations are refused."""
    run(
        local_cloud,
        "db_writer_secret_arn",
        "INSERT INTO date_mapping (date_id, trading_date) VALUES (30002, DATE '2030-01-03') ON CONFLICT DO NOTHING",
    )
    run(local_cloud, "db_writer_secret_arn", "DELETE FROM date_mapping WHERE date_id = 30002")
    assert "permission denied for schema public" in refused(
        local_cloud, "db_writer_secret_arn", "CREATE TABLE sneaky (x int)"
    )
    assert "must be owner" in refused(local_cloud, "db_writer_secret_arn", "DROP TABLE stock_data")
    assert "permission denied for table schema_migrations" in refused(
        local_cloud, "db_writer_secret_arn", "DELETE FROM schema_migrations"
    )


def test_the_roles_own_nothing(local_cloud: Any) -> None:
    """Given the migrated database, then no table, view or sequence belongs to the reader or writer role."""
    answer = run(
        local_cloud,
        "db_secret_arn",
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname IN ('closecast_reader', 'closecast_writer')",
    )
    assert answer["records"] == [[{"longValue": 0}]]


def test_only_the_master_may_set_a_role_password(local_cloud: Any) -> None:
    """Given the writer's secret, when it calls the password function migration 0004 made for the migrate
    function, then the database refuses it."""
    message = refused(
        local_cloud, "db_writer_secret_arn", "SELECT closecast_set_role_password('closecast_writer', 'x')"
    )
    assert "permission denied for function closecast_set_role_password" in message


def test_an_unknown_secret_is_refused_as_the_data_api_does(local_cloud: Any) -> None:
    """Given a secret ARN that names no secret, then SecretsErrorException (no statement runs)."""
    rds = client("rds-data", local_cloud.state["data_api_endpoint_url"])
    with pytest.raises(ClientError) as caught:
        rds.execute_statement(
            resourceArn=local_cloud.state["db_cluster_arn"],
            secretArn="arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf",
            database=local_cloud.state["database"],
            sql="SELECT 1",
        )
    assert caught.value.response["Error"]["Code"] == "SecretsErrorException"
