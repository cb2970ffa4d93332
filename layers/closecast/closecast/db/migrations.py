"""Schema migrations: plain SQL files applied in order through the Data API.

Files live in ``closecast/db/migrations/NNNN_name.sql`` and are applied in file-name order, each in its
own transaction, and recorded in ``schema_migrations(version, applied_at, checksum)`` where ``version``
is the file name without ``.sql``.  Applying twice is a no-op; an applied file whose content changed
raises :class:`ChecksumMismatch` (write a new migration instead of editing an old one).  Concurrent
appliers (two deploys, two local clouds on one database) are serialised by a transaction-scoped advisory
lock.

The Data API runs one statement per call, so each file is split into statements by this rule:
**a statement ends at a line whose last non-blank character is ``;``**, except inside a dollar-quoted
body (``$$ ... $$`` or ``$tag$ ... $tag$``) and except on comment lines (lines starting with ``--``).
Write one statement per such block; blank lines and comments in between are fine.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from closecast.db.data_api import DataApi

__all__ = [
    "ChecksumMismatch",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "load_migrations",
    "pending_migrations",
    "split_statements",
]

ADVISORY_LOCK_KEY = 0x636C6F7365636173  # "closecas" as a 64-bit integer: one lock for all appliers

_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum text NOT NULL
)"""

_FILE_RE = re.compile(r"^\d{4,}_[A-Za-z0-9_]+\.sql$")
_DOLLAR_TAG_RE = re.compile(r"\$[A-Za-z_]?[A-Za-z0-9_]*\$")


class MigrationError(Exception):
    """A migration could not be applied (the database error is chained as ``__cause__``)."""


class ChecksumMismatch(MigrationError):
    """An already applied migration file has changed since it was applied."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        normalised = self.sql.replace("\r\n", "\n")
        return hashlib.sha256(normalised.encode("utf-8")).hexdigest()

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Split a migration file into statements (see the module docstring for the rule)."""
    statements: list[str] = []
    current: list[str] = []
    open_tag: str | None = None
    for line in sql.replace("\r\n", "\n").split("\n"):
        current.append(line)
        stripped = line.strip()
        code = line if open_tag is not None else line.split("--", 1)[0]  # comment text is not code
        for tag in _DOLLAR_TAG_RE.findall(code):
            if open_tag is None:
                open_tag = tag
            elif tag == open_tag:
                open_tag = None
        if open_tag is None and not stripped.startswith("--") and stripped.endswith(";"):
            statement = _strip_comments_and_blank("\n".join(current))
            if statement:
                statements.append(statement.rstrip().rstrip(";").rstrip())
            current = []
    rest = _strip_comments_and_blank("\n".join(current))
    if rest:
        statements.append(rest.rstrip().rstrip(";").rstrip())
    return statements


def _strip_comments_and_blank(text: str) -> str:
    lines = [line for line in text.split("\n") if line.strip() and not line.strip().startswith("--")]
    return "\n".join(lines).strip()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Migrations from ``directory`` (default: the ones shipped in this package), in file-name order."""
    if directory is not None:
        files = [(p.name, p.read_text(encoding="utf-8")) for p in Path(directory).iterdir()]
    else:
        root = resources.files("closecast.db") / "migrations"
        files = [(p.name, p.read_text(encoding="utf-8")) for p in root.iterdir() if p.is_file()]
    found = sorted((name, text) for name, text in files if _FILE_RE.match(name))
    return [Migration(version=name[: -len(".sql")], sql=text) for name, text in found]


def _applied(api: DataApi, transaction_id: str | None = None) -> dict[str, str]:
    rows = api.execute(
        "SELECT version, checksum FROM schema_migrations ORDER BY version", transaction_id=transaction_id
    ).records
    return {str(row["version"]): str(row["checksum"]) for row in rows}


def _lock(api: DataApi, transaction_id: str) -> None:
    api.execute(
        "SELECT pg_advisory_xact_lock(:key)", {"key": ADVISORY_LOCK_KEY}, transaction_id=transaction_id
    )


def _verify(migrations: Iterable[Migration], applied: dict[str, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise ChecksumMismatch(
                f"migration {migration.version} was applied with checksum {recorded} but the file now has "
                f"{migration.checksum}; add a new migration instead of editing an applied one"
            )


def _ensure_table(api: DataApi) -> None:
    with api.transaction() as tid:
        _lock(api, tid)
        api.execute(_CREATE_TABLE, transaction_id=tid)


def pending_migrations(api: DataApi, *, directory: Path | None = None) -> list[str]:
    """Versions not yet applied, in order.  Raises :class:`ChecksumMismatch` if an applied file changed."""
    migrations = load_migrations(directory)
    _ensure_table(api)
    applied = _applied(api)
    _verify(migrations, applied)
    return [m.version for m in migrations if m.version not in applied]


def apply_migrations(api: DataApi, *, directory: Path | None = None) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the versions newly applied."""
    migrations = load_migrations(directory)
    _ensure_table(api)
    _verify(migrations, _applied(api))
    newly: list[str] = []
    for migration in migrations:
        with api.transaction() as tid:
            _lock(api, tid)
            applied = _applied(api, tid)  # re-read under the lock: another applier may have won
            _verify([migration], applied)
            if migration.version in applied:
                continue
            for index, statement in enumerate(migration.statements, start=1):
                try:
                    api.execute(statement, transaction_id=tid)
                except Exception as exc:
                    raise MigrationError(
                        f"migration {migration.version}, statement {index} failed: {exc}"
                    ) from exc
            api.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (:version, :checksum)",
                {"version": migration.version, "checksum": migration.checksum},
                transaction_id=tid,
            )
        newly.append(migration.version)
    return newly
