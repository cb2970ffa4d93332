"""PostgreSQL for the local cloud: an embedded server (``pgserver``) or an existing one by URL.

Both kinds share one small interface, :class:`PostgresServer`::

    server = open_postgres(database_url=None, data_dir=Path(".closecast/pg"))
    dsn = server.ensure_database("closecast")   # conninfo URI for that database
    ...
    server.stop()                                # stops the embedded server; no-op for external ones

The embedded server keeps its data in ``data_dir``: stopping and starting again on the same directory
keeps every table.  As root, pgserver runs PostgreSQL as the ``pgserver`` user and makes the parents
of ``data_dir`` traversable for it.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = [
    "EmbeddedPostgres",
    "ExternalPostgres",
    "PostgresServer",
    "connect_external",
    "open_postgres",
    "start_embedded",
    "with_database",
]

_log = logging.getLogger(__name__)


def with_database(uri: str, database: str) -> str:
    """The same connection URI with its database (path) replaced."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _ensure_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            with suppress(psycopg.errors.DuplicateDatabase):  # created concurrently
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class PostgresServer(Protocol):
    """What the local cloud needs from a PostgreSQL server."""

    @property
    def dsn(self) -> str:
        """Conninfo URI of the server's maintenance database."""
        ...

    def ensure_database(self, name: str) -> str:
        """Create database ``name`` if missing; return its conninfo URI."""
        ...

    def stop(self) -> None: ...


class EmbeddedPostgres:
    """A PostgreSQL 16 started from the ``pgserver`` wheel, data in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        import pgserver  # tools-only dependency; imported here so importing this module stays cheap

        self.data_dir = Path(data_dir).expanduser().resolve()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = pgserver.get_server(str(self.data_dir), cleanup_mode=None)
        except subprocess.TimeoutExpired:
            # pgserver gives pg_ctl 10 s; on a busy machine the server is often up just after that.
            # Forget the half-made handle and attach again (get_server attaches to a running server).
            _log.warning("pg_ctl timed out starting postgres in %s; attaching again", self.data_dir)
            self._forget_handle()
            time.sleep(1.0)
            self._server = pgserver.get_server(str(self.data_dir), cleanup_mode=None)
        self._dsn: str = self._server.get_uri()
        self._stopped = False

    @property
    def dsn(self) -> str:
        return self._dsn

    def ensure_database(self, name: str) -> str:
        _ensure_database(self._dsn, name)
        return with_database(self._dsn, name)

    def stop(self) -> None:
        """Stop the server (fast shutdown, data kept).  Idempotent."""
        if self._stopped:
            return
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)
        except Exception:  # already stopped
            _log.info("postgres in %s was not running", self.data_dir)
        self._forget_handle()
        self._stopped = True

    def _forget_handle(self) -> None:
        """Drop pgserver's cached handle for this data dir and its atexit hook, so that a later start on
        the same directory really starts a server and interpreter exit does not trip on a stale handle."""
        from pgserver import PostgresServer as _PgServer

        handle = _PgServer._instances.pop(self.data_dir, None)
        if handle is not None:
            atexit.unregister(handle._cleanup)
            with suppress(Exception):
                handle.global_process_id_list.get_and_remove(os.getpid())

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ExternalPostgres:
    """An already running server given by URL (``--database-url``); never started or stopped here."""

    def __init__(self, url: str) -> None:
        self._dsn = url

    @property
    def dsn(self) -> str:
        return self._dsn

    def ensure_database(self, name: str) -> str:
        target = with_database(self._dsn, name)
        try:  # the role may not be allowed to CREATE DATABASE: fine if the database already exists
            with psycopg.connect(target, connect_timeout=5):
                return target
        except psycopg.OperationalError:
            pass
        _ensure_database(self._dsn, name)
        return target

    def stop(self) -> None:
        return None

    def __enter__(self) -> ExternalPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server whose data lives in ``data_dir``."""
    return EmbeddedPostgres(data_dir)


def connect_external(url: str) -> ExternalPostgres:
    """Use an existing server; checks that it answers."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("SELECT 1")
    return ExternalPostgres(url)


def open_postgres(*, database_url: str | None, data_dir: Path) -> PostgresServer:
    """``database_url`` if given, else the embedded server in ``data_dir``."""
    if database_url:
        return connect_external(database_url)
    return start_embedded(data_dir)
