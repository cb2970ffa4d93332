"""The embedded PostgreSQL of the local cloud."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from closecast_tools.local.postgres import ExternalPostgres, open_postgres, start_embedded, with_database

pytestmark = pytest.mark.integration


def test_data_survives_a_restart_on_the_same_directory(tmp_path: Path) -> None:
    # Given an embedded server with a database holding one row
    data_dir = tmp_path / "pg"
    server = start_embedded(data_dir)
    try:
        dsn = server.ensure_database("closecast")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    finally:
        server.stop()
    # When it is started again on the same directory
    again = start_embedded(data_dir)
    try:
        # Then the database and its row are there, and ensure_database is a no-op
        dsn = again.ensure_database("closecast")
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        again.stop()


def test_external_server_is_used_through_the_same_interface(postgres: object) -> None:
    # Given a running server's URL (here the session's embedded one)
    url = postgres.dsn  # type: ignore[attr-defined]
    # When opened as an external server / Then it creates and returns databases, and stop() leaves it running
    server = open_postgres(database_url=url, data_dir=Path("/nonexistent"))
    assert isinstance(server, ExternalPostgres)
    dsn = server.ensure_database("external_check")
    server.stop()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("external_check",)


def test_with_database_replaces_only_the_database() -> None:
    # Given URIs with a socket host query or a TCP host / When the database is replaced / Then the rest is kept
    assert with_database("postgresql://postgres:@/postgres?host=/tmp/x", "app") == (
        "postgresql://postgres:@/app?host=/tmp/x"
    )
    assert with_database("postgresql://u:p@h:5433/db", "app") == "postgresql://u:p@h:5433/app"
