"""Schema migrations through the Data API: order, record, idempotence, checksum guard, concurrency."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from closecast.db.data_api import DataApi
from closecast.db.migrations import (
    ChecksumMismatch,
    MigrationError,
    apply_migrations,
    load_migrations,
    pending_migrations,
    split_statements,
)
from closecast_tools.local.data_api import LocalDataApi
from closecast_tools.local.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration

CONTRACT_TABLES = {
    "stock_data",
    "date_mapping",
    "model",
    "model_inference",
    "job",
    "revealed_target",
    "schema_migrations",
    "day_store",  # 0006
    "prediction",  # 0007: the live loop
    "champion",
    "promotion",
    "daily_chain",
}


@pytest.fixture
def fresh_api(
    postgres: EmbeddedPostgres, target: Any, make_client: Callable[[str], Any]
) -> Iterator[DataApi]:
    """A DataApi on a brand-new, empty database (its own endpoint)."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    dsn = postgres.ensure_database(name)
    with LocalDataApi(
        dsn, cluster_arn=target.cluster_arn, secret_arn=target.secret_arn, database=name
    ) as local:
        yield DataApi(
            make_client(local.url), target.cluster_arn, target.secret_arn, name, sleep=lambda _s: None
        )


def _tables(api: DataApi) -> set[str]:
    rows = api.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").records
    return {r["tablename"] for r in rows}


def test_shipped_migrations_create_the_contract_tables_and_record_themselves(fresh_api: DataApi) -> None:
    # Given an empty database / When migrated
    applied = apply_migrations(fresh_api)
    # Then every shipped file was applied in order and recorded with its checksum
    shipped = load_migrations()
    assert applied == [m.version for m in shipped] and applied[0] == "0001_initial"
    recorded = fresh_api.execute(
        "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version"
    )
    assert [(r["version"], r["checksum"]) for r in recorded.records] == [
        (m.version, m.checksum) for m in shipped
    ]
    assert _tables(fresh_api) == CONTRACT_TABLES


def test_applying_twice_is_a_no_op(fresh_api: DataApi) -> None:
    # Given a migrated database / When migrated again / Then nothing is applied and nothing is pending
    apply_migrations(fresh_api)
    assert apply_migrations(fresh_api) == []
    assert pending_migrations(fresh_api) == []


def test_files_apply_in_name_order_each_once(fresh_api: DataApi, tmp_path: Path) -> None:
    # Given two files where the second depends on the first (names sort differently from creation order)
    (tmp_path / "0002_add_column.sql").write_text("ALTER TABLE thing ADD COLUMN note text;\n")
    (tmp_path / "0001_thing.sql").write_text("-- first;\nCREATE TABLE thing (id int PRIMARY KEY);\n")
    (tmp_path / "README.md").write_text("not a migration")
    # When pending, then applied
    assert pending_migrations(fresh_api, directory=tmp_path) == ["0001_thing", "0002_add_column"]
    assert apply_migrations(fresh_api, directory=tmp_path) == ["0001_thing", "0002_add_column"]
    # Then both took effect; a third file added later is the only one applied next time
    (tmp_path / "0003_index.sql").write_text("CREATE INDEX thing_note_idx ON thing (note);\n")
    assert apply_migrations(fresh_api, directory=tmp_path) == ["0003_index"]
    fresh_api.execute("INSERT INTO thing (id, note) VALUES (1, 'ok')")


def test_changed_applied_file_is_refused(fresh_api: DataApi, tmp_path: Path) -> None:
    # Given an applied migration whose file is edited afterwards
    path = tmp_path / "0001_thing.sql"
    path.write_text("CREATE TABLE thing (id int);\n")
    apply_migrations(fresh_api, directory=tmp_path)
    path.write_text("CREATE TABLE thing (id bigint);\n")
    # When migrating or listing pending / Then ChecksumMismatch
    with pytest.raises(ChecksumMismatch):
        apply_migrations(fresh_api, directory=tmp_path)
    with pytest.raises(ChecksumMismatch):
        pending_migrations(fresh_api, directory=tmp_path)


def test_failing_migration_leaves_nothing_behind(fresh_api: DataApi, tmp_path: Path) -> None:
    # Given a file whose second statement fails
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE half (id int);\nINSERT INTO missing VALUES (1);\n")
    # When applied / Then MigrationError, the first statement rolled back, nothing recorded
    with pytest.raises(MigrationError):
        apply_migrations(fresh_api, directory=tmp_path)
    assert "half" not in _tables(fresh_api)
    assert pending_migrations(fresh_api, directory=tmp_path) == ["0001_bad"]


def test_concurrent_appliers_apply_each_file_once(fresh_api: DataApi) -> None:
    # Given four appliers starting together on an empty database
    results: list[list[str]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            results.append(apply_migrations(fresh_api))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then none failed and, between them, each version was applied exactly once
    assert failures == []
    applied = sorted(v for result in results for v in result)
    assert applied == sorted(m.version for m in load_migrations())


@pytest.mark.unit
def test_statement_splitting_rule() -> None:
    # Given statements ending in ';' at end of line, a $$ body with inner ';', and comments mentioning ;
    sql = (
        "-- header; with $$ in a comment\n"
        "CREATE TABLE a (\n  x int\n);\n\n"
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n"
        "-- trailing comment;\n"
        "SELECT 'a;b' AS s;\n"
    )
    # When split / Then three statements, without the trailing semicolons or comment lines
    assert split_statements(sql) == [
        "CREATE TABLE a (\n  x int\n)",
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql",
        "SELECT 'a;b' AS s",
    ]


@pytest.mark.unit
def test_shipped_migrations_split_into_single_statements() -> None:
    # Given the shipped files / When split / Then no statement still contains a statement separator (outside
    # dollar-quoted bodies, whose statements belong to the function or DO block)
    for migration in load_migrations():
        for statement in migration.statements:
            outside = re.sub(r"(\$[A-Za-z_]*\$).*?\1", "", statement, flags=re.S)
            assert ";\n" not in outside, (migration.version, statement[:80])
