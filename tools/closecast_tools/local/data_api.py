"""A local RDS Data API endpoint over a real PostgreSQL.

An unmodified boto3 ``rds-data`` client pointed at :attr:`LocalDataApi.url` (``endpoint_url=`` or
``AWS_ENDPOINT_URL_RDS_DATA``) can run ExecuteStatement, BatchExecuteStatement, BeginTransaction,
CommitTransaction and RollbackTransaction against it, with the shapes and limits of Aurora PostgreSQL:

* REST-JSON protocol: ``POST /Execute`` etc., errors as HTTP status + ``x-amzn-ErrorType`` + ``{"message"}``.
* Parameters typed the way the Data API types them: ``longValue`` -> int8, ``doubleValue`` -> float8,
  ``stringValue`` -> **varchar** (so a string for a jsonb/date/uuid column needs a ``typeHint`` or a cast,
  exactly as on Aurora), ``typeHint`` DATE/TIME/TIMESTAMP/DECIMAL/JSON/UUID, ``blobValue`` -> bytea;
  array parameters are refused.
* Records in the Data API field shapes; ``columnMetadata`` with PostgreSQL type names; ``formattedRecords``
  for ``formatRecordsAs=JSON``; ``numberOfRecordsUpdated``; empty ``generatedFields`` (use RETURNING).
* Limits: request body over 4 MiB refused (HTTP 413); response over 1 MiB refused with
  ``BadRequestException: Database returned more than the allowed response size limit``; statements
  cancelled after 45 s (``StatementTimeoutException``); transactions idle for 3 minutes rolled back.
* SQL errors as ``DatabaseErrorException`` with the PostgreSQL JDBC-style message Aurora sends:
  ``ERROR: <message>\\n  Detail: ...\\n  Hint: ...\\n  Position: N; SQLState: XXXXX``.
* Only the configured cluster ARN, secret ARNs and database are accepted. Each secret is a database user, as
  on Aurora: the master secret connects as the server's own DSN user; any other secret is looked up through
  ``credentials`` (the local cloud reads it from Secrets Manager) and connects as its ``username`` with its
  ``password``, so a read-only role's INSERT fails with PostgreSQL's permission error (SQLState 42501).
* A statement error inside a transaction ends that transaction (later calls get
  ``TransactionNotFoundException``), as the Data API documents ("the transaction was aborted due
  to an error from a previous call").
* One transaction runs one statement at a time; a concurrent call is refused
  (``DatabaseErrorException: Transaction is still running a query``).

Not emulated: ``continueAfterTimeout`` (the statement is always cancelled), the 64 KB-per-row limit,
``schema`` (refused, as on Aurora PostgreSQL), SigV4 checking (any credentials are accepted).
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import functools
import json
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg import adapt, pq
from psycopg.conninfo import make_conninfo
from psycopg.types.numeric import Int8
from psycopg.types.string import TextLoader
from pydantic_core import from_json

__all__ = ["MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES", "ApiError", "LocalDataApi", "translate_placeholders"]

_log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_RESPONSE_BYTES = 1024 * 1024
RESPONSE_TOO_LARGE = "Database returned more than the allowed response size limit"
_HARD_BODY_CAP = 64 * 1024 * 1024  # never read more than this from a socket


class ApiError(Exception):
    """An error answer: HTTP status, ``x-amzn-ErrorType`` code, message (and extra members)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequestException", message)


# --------------------------------------------------------------------------------------------------
# :name placeholders -> $n


_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass
class Translated:
    sql: str
    names: list[str]  # parameter name of $1, $2, ...
    shifts: list[tuple[int, int]] = field(default_factory=list)  # (end in output, output-input delta)

    def original_position(self, position: int) -> int:
        """Map a 1-based character position in the translated SQL back to the original SQL."""
        delta = 0
        for end, shift in self.shifts:
            if end < position:
                delta = shift
        return position - delta


@functools.lru_cache(maxsize=512)
def translate_placeholders(sql: str) -> Translated:
    """Replace ``:name`` with ``$n``, leaving ``::casts``, string literals, quoted identifiers,
    dollar-quoted bodies and comments untouched.  A name used twice gets the same ``$n``."""
    out: list[str] = []
    names: list[str] = []
    index_of: dict[str, int] = {}
    shifts: list[tuple[int, int]] = []
    out_len = 0
    delta = 0
    i = 0
    n = len(sql)

    def emit(text: str) -> None:
        nonlocal out_len
        out.append(text)
        out_len += len(text)

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "'":
            escape = (
                i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            j = i + 1
            while j < n:
                if escape and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            emit(sql[i : j + 1])
            i = j + 1
        elif c == '"':
            j = sql.find('"', i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == '"':
                j = sql.find('"', j + 2)
            j = n - 1 if j == -1 else j
            emit(sql[i : j + 1])
            i = j + 1
        elif c == "-" and nxt == "-":
            j = sql.find("\n", i)
            j = n if j == -1 else j
            emit(sql[i:j])
            i = j
        elif c == "/" and nxt == "*":
            depth = 0
            j = i
            while j < n:
                if sql.startswith("/*", j):
                    depth += 1
                    j += 2
                elif sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            emit(sql[i:j])
            i = j
        elif c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                tag = match.group(0)
                end = sql.find(tag, match.end())
                end = n if end == -1 else end + len(tag)
                emit(sql[i:end])
                i = end
            else:
                emit(c)
                i += 1
        elif c == ":" and nxt == ":":
            emit("::")
            i += 2
        elif c == ":" and _IDENT_START.match(nxt):
            match = _IDENT.match(sql, i + 1)
            assert match is not None
            name = match.group(0)
            if name not in index_of:
                names.append(name)
                index_of[name] = len(names)
            placeholder = f"${index_of[name]}"
            emit(placeholder)
            delta += len(placeholder) - (len(name) + 1)
            shifts.append((out_len, delta))
            i = match.end()
        else:
            emit(c)
            i += 1
    return Translated("".join(out), names, shifts)


# --------------------------------------------------------------------------------------------------
# Parameters


class _Varchar(str):
    """A string parameter typed ``character varying`` (what Aurora's driver sends for stringValue)."""


class _JsonText(str):
    """A JSON document (typeHint JSON), sent as ``json`` text."""


def _typed_str_dumper(type_name: str) -> type[adapt.Dumper]:
    oid = psycopg.postgres.types[type_name].oid

    class _Dumper(adapt.Dumper):
        def dump(self, obj: Any) -> bytes:
            return str(obj).encode("utf-8")

    _Dumper.oid = oid
    return _Dumper


_VarcharDumper = _typed_str_dumper("varchar")
_JsonDumper = _typed_str_dumper("json")

_TIME_RE = re.compile(r"^\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?$")


def _parse_hinted(hint: str, text: str, name: str) -> Any:
    try:
        if hint == "DATE":
            if not _DATE_RE.match(text):
                raise ValueError("expected YYYY-MM-DD")
            return dt.date.fromisoformat(text)
        if hint == "TIME":
            if not _TIME_RE.match(text):
                raise ValueError("expected HH:MM:SS[.FFF]")
            clock, _, frac = text.partition(".")
            micro = int(frac[:6].ljust(6, "0")) if frac else 0
            return dt.time.fromisoformat(clock).replace(microsecond=micro)
        if hint == "TIMESTAMP":
            match = _TIMESTAMP_RE.match(text)
            if not match:
                raise ValueError("expected YYYY-MM-DD HH:MM:SS[.FFF]")
            stamp = dt.datetime.strptime(text[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S")
            fraction = match.group(1)
            return stamp.replace(microsecond=int(fraction[:6].ljust(6, "0"))) if fraction else stamp
        if hint == "DECIMAL":
            return Decimal(text)
        if hint == "JSON":
            return _JsonText(text)
        if hint == "UUID":
            return uuid.UUID(text)
    except (ValueError, InvalidOperation) as exc:
        raise _bad_request(f"Invalid value for parameter {name} with typeHint {hint}: {exc}") from exc
    raise _bad_request(f"Unsupported typeHint {hint} for parameter {name}")


def _param_value(param: dict[str, Any]) -> Any:
    name = str(param.get("name", ""))
    value = param.get("value") or {}
    hint = param.get("typeHint")
    if not isinstance(value, dict):
        raise _bad_request(f"Invalid value for parameter {name}")
    if value.get("isNull") or not value:
        return None
    if "arrayValue" in value:
        raise _bad_request("Array parameters are not supported.")
    if "booleanValue" in value:
        return bool(value["booleanValue"])
    if "longValue" in value:
        return Int8(int(value["longValue"]))
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "blobValue" in value:
        try:
            return base64.b64decode(value["blobValue"], validate=True)
        except ValueError as exc:
            raise _bad_request(f"Invalid blobValue for parameter {name}") from exc
    if "stringValue" in value:
        text = str(value["stringValue"])
        if "\x00" in text:  # PostgreSQL text cannot hold NUL; Aurora refuses it (psycopg would cut it short)
            raise ApiError(
                400,
                "DatabaseErrorException",
                'ERROR: invalid byte sequence for encoding "UTF8": 0x00; SQLState: 22021',
            )
        return _parse_hinted(str(hint), text, name) if hint else _Varchar(text)
    raise _bad_request(f"Invalid value for parameter {name}")


def _bind(translated: Translated, parameters: Sequence[dict[str, Any]]) -> list[Any]:
    given: dict[str, Any] = {}
    for param in parameters:
        name = param.get("name")
        if not name:
            raise _bad_request("Parameter name must be specified")
        given[str(name)] = _param_value(param)
    missing = [name for name in translated.names if name not in given]
    if missing:
        raise ApiError(
            400,
            "DatabaseErrorException",
            f"ERROR: No value specified for parameter {missing[0]}.; SQLState: 22023",
        )
    return [given[name] for name in translated.names]


# --------------------------------------------------------------------------------------------------
# Results

_TYPES = psycopg.postgres.types
_INT_OIDS = {_TYPES[n].oid for n in ("int2", "int4", "int8", "oid")}
_FLOAT_OIDS = {_TYPES[n].oid for n in ("float4", "float8")}
_BOOL_OID = _TYPES["bool"].oid
_BYTEA_OID = _TYPES["bytea"].oid
_NUMERIC_OID = _TYPES["numeric"].oid
_TIMESTAMPTZ_OID = _TYPES["timestamptz"].oid
_TIMETZ_OID = _TYPES["timetz"].oid
_NAME_BY_OID = {t.oid: t.name for t in _TYPES}
_ELEMENT_BY_ARRAY_OID = {t.array_oid: t.oid for t in _TYPES if t.array_oid}
# Loaded by psycopg into Python values; every other type is loaded as PostgreSQL's own text.
_NATIVE = {"int2", "int4", "int8", "oid", "float4", "float8", "bool", "bytea"}
_JDBC_TYPE = {
    "bool": -7,
    "int2": 5,
    "int4": 4,
    "int8": -5,
    "oid": -5,
    "float4": 7,
    "float8": 8,
    "numeric": 2,
    "bpchar": 1,
    "char": 1,
    "varchar": 12,
    "text": 12,
    "name": 12,
    "date": 91,
    "time": 92,
    "timetz": 92,
    "timestamp": 93,
    "timestamptz": 93,
    "bytea": -2,
}
_PRECISION = {"bool": 1, "int2": 5, "int4": 10, "int8": 19, "oid": 10, "float4": 8, "float8": 17, "date": 13}
_DML_TAGS = {"INSERT", "UPDATE", "DELETE", "MERGE", "COPY"}


@dataclass
class _ColumnInfo:
    schema: str = ""
    table: str = ""
    nullable: int = 2  # JDBC: 0 no nulls, 1 nullable, 2 unknown
    auto_increment: bool = False


def _strip_utc(text: str) -> str:
    """``2024-01-02 03:04:05.6+00`` -> ``2024-01-02 03:04:05.6`` (sessions run in UTC)."""
    return re.sub(r"\+00(?::00)?$", "", text)


@dataclass
class _Shape:
    decimal_as_number: bool = False
    long_as_string: bool = False


def _scalar_field(value: Any, oid: int, shape: _Shape) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if oid in _INT_OIDS:
        return {"stringValue": str(value)} if shape.long_as_string else {"longValue": int(value)}
    if oid in _FLOAT_OIDS:
        number = float(value)
        return {"doubleValue": number} if math.isfinite(number) else {"stringValue": str(value)}
    if oid == _BOOL_OID:
        return {"booleanValue": bool(value)}
    if oid == _BYTEA_OID:
        return {"blobValue": base64.b64encode(bytes(value)).decode("ascii")}
    if oid in _ELEMENT_BY_ARRAY_OID:
        return {"arrayValue": _array_value(value, _ELEMENT_BY_ARRAY_OID[oid])}
    text = str(value)
    if oid == _NUMERIC_OID and shape.decimal_as_number:
        exact = Decimal(text)
        if exact == exact.to_integral_value() and "." not in text:
            return {"longValue": int(exact)}
        return {"doubleValue": float(exact)}
    if oid in (_TIMESTAMPTZ_OID, _TIMETZ_OID):
        text = _strip_utc(text)
    return {"stringValue": text}


def _array_value(values: list[Any], element_oid: int) -> dict[str, Any]:
    if any(isinstance(v, list) for v in values):
        return {"arrayValues": [_array_value(v, element_oid) if isinstance(v, list) else {} for v in values]}
    if element_oid in _INT_OIDS:
        return {"longValues": [None if v is None else int(v) for v in values]}
    if element_oid in _FLOAT_OIDS:
        return {"doubleValues": [None if v is None else float(v) for v in values]}
    if element_oid == _BOOL_OID:
        return {"booleanValues": [None if v is None else bool(v) for v in values]}
    return {"stringValues": [None if v is None else _strip_utc(str(v)) for v in values]}


def _json_value(value: Any, oid: int) -> Any:
    """A value for ``formattedRecords`` (formatRecordsAs=JSON)."""
    if value is None:
        return None
    if oid in _INT_OIDS or oid == _BOOL_OID:
        return value
    if oid in _FLOAT_OIDS:
        return value if math.isfinite(value) else str(value)
    if oid == _BYTEA_OID:
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list):
        return [_json_value(v, _ELEMENT_BY_ARRAY_OID.get(oid, 0)) for v in value]
    if oid in (_TIMESTAMPTZ_OID, _TIMETZ_OID):
        return _strip_utc(str(value))
    return str(value)


# --------------------------------------------------------------------------------------------------
# Connections and transactions


class _Pool:
    """Idle autocommit connections, configured like a Data API session (UTC, ISO dates, 45 s timeout)."""

    def __init__(self, dsn: str, statement_timeout_ms: int, max_idle: int = 8) -> None:
        self.dsn = dsn
        self._timeout_ms = statement_timeout_ms
        self._max_idle = max_idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True, application_name="closecast-local-data-api")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        conn.execute(f"SET statement_timeout = {int(self._timeout_ms)}")
        conn.adapters.register_dumper(_Varchar, _VarcharDumper)
        conn.adapters.register_dumper(_JsonText, _JsonDumper)
        for info in _TYPES:
            if info.name not in _NATIVE:
                conn.adapters.register_loader(info.oid, TextLoader)
        return conn

    def get(self) -> psycopg.Connection[Any]:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return self._connect()

    def put(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


Credentials = Callable[[str], "tuple[str, str] | None"]  # secret ARN -> (username, password), or None


@dataclass
class _Transaction:
    id: str
    conn: psycopg.Connection[Any]
    pool: _Pool
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


# --------------------------------------------------------------------------------------------------
# The service


class _Engine:
    """The Data API operations, independent of HTTP."""

    def __init__(
        self,
        dsn: str,
        *,
        cluster_arn: str,
        secret_arn: str,
        database: str,
        statement_timeout_s: float,
        transaction_idle_timeout_s: float,
        max_response_bytes: int,
        credentials: Credentials | None = None,
    ) -> None:
        self.cluster_arn = cluster_arn
        self.secret_arn = secret_arn
        self.database = database
        self.max_response_bytes = max_response_bytes
        self.transaction_idle_timeout_s = transaction_idle_timeout_s
        self._timeout_ms = int(statement_timeout_s * 1000)
        self.pool = _Pool(dsn, self._timeout_ms)
        self._credentials = credentials
        self._pools: dict[str, _Pool] = {secret_arn: self.pool}
        self._pools_lock = threading.Lock()
        self._local = threading.local()  # the pool of the call this thread is serving
        self._transactions: dict[str, _Transaction] = {}
        self._tx_lock = threading.Lock()
        self._columns: dict[tuple[int, int], _ColumnInfo] = {}
        self._columns_lock = threading.Lock()

    # ---- checks ------------------------------------------------------------------------------

    def _check_target(self, body: dict[str, Any], *, with_database: bool = True) -> None:
        resource = body.get("resourceArn")
        if not resource:
            raise _bad_request("resourceArn must be specified")
        if resource != self.cluster_arn:
            cluster = str(resource).rsplit(":", 1)[-1]
            raise ApiError(
                400, "HttpEndpointNotEnabledException", f"HttpEndpoint is not enabled for cluster {cluster}"
            )
        secret = body.get("secretArn")
        if not secret:
            raise _bad_request("secretArn must be specified")
        self._local.pool = self._pool_for(str(secret))
        if with_database:
            if body.get("schema"):
                raise _bad_request("The schema parameter isn't supported.")
            database = body.get("database")
            if database and database != self.database:
                raise ApiError(
                    400,
                    "DatabaseErrorException",
                    f'FATAL: database "{database}" does not exist; SQLState: 3D000',
                )

    def _pool_for(self, secret_arn: str) -> _Pool:
        """The connections of the database user the secret names."""
        with self._pools_lock:
            pool = self._pools.get(secret_arn)
            if pool is not None:
                return pool
        found = self._credentials(secret_arn) if self._credentials is not None else None
        if found is None:
            raise ApiError(400, "SecretsErrorException", "Secrets Manager can't find the specified secret.")
        username, password = found
        pool = _Pool(make_conninfo(self.pool.dsn, user=username, password=password), self._timeout_ms)
        with self._pools_lock:
            return self._pools.setdefault(secret_arn, pool)

    # ---- transactions ------------------------------------------------------------------------

    def _transaction(self, transaction_id: str) -> _Transaction:
        with self._tx_lock:
            txn = self._transactions.get(transaction_id)
        if txn is None:
            raise ApiError(404, "TransactionNotFoundException", f"Transaction {transaction_id} is not found")
        return txn

    def _end(self, txn: _Transaction, sql: str) -> None:
        with self._tx_lock:
            self._transactions.pop(txn.id, None)
        try:
            if not txn.conn.closed:
                txn.conn.execute(sql)
        finally:
            txn.pool.put(txn.conn)

    def begin_transaction(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_target(body)
        conn = self._connection()
        try:
            conn.execute("BEGIN")
        except BaseException:
            conn.close()
            raise
        txn = _Transaction(id=secrets.token_urlsafe(48), conn=conn, pool=self._local.pool)
        with self._tx_lock:
            self._transactions[txn.id] = txn
        return {"transactionId": txn.id}

    def _finish(self, body: dict[str, Any], sql: str, status: str) -> dict[str, Any]:
        self._check_target(body, with_database=False)
        tid = body.get("transactionId")
        if not tid:
            raise _bad_request("transactionId must be specified")
        txn = self._transaction(str(tid))
        if not txn.lock.acquire(blocking=False):
            raise ApiError(400, "DatabaseErrorException", "Transaction is still running a query")
        try:
            if self._transaction_or_none(txn.id) is None:
                raise ApiError(404, "TransactionNotFoundException", f"Transaction {txn.id} is not found")
            try:
                self._end(txn, sql)
            except psycopg.Error as exc:
                raise self._database_error(exc, None) from exc
        finally:
            txn.lock.release()
        return {"transactionStatus": status}

    def _transaction_or_none(self, tid: str) -> _Transaction | None:
        with self._tx_lock:
            return self._transactions.get(tid)

    def commit_transaction(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._finish(body, "COMMIT", "Transaction Committed")

    def rollback_transaction(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._finish(body, "ROLLBACK", "Rollback Complete")

    def reap_idle_transactions(self) -> None:
        """Roll back transactions idle for longer than the timeout (3 minutes on the Data API)."""
        now = time.monotonic()
        with self._tx_lock:
            stale = [
                t for t in self._transactions.values() if now - t.last_used > self.transaction_idle_timeout_s
            ]
        for txn in stale:
            if txn.lock.acquire(blocking=False):
                try:
                    _log.info("rolling back idle transaction %s", txn.id[:12])
                    self._end(txn, "ROLLBACK")
                except psycopg.Error:
                    txn.conn.close()
                finally:
                    txn.lock.release()

    def close(self) -> None:
        with self._tx_lock:
            transactions, self._transactions = list(self._transactions.values()), {}
        for txn in transactions:
            txn.conn.close()
        with self._pools_lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    # ---- statements --------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        pool: _Pool = self._local.pool
        try:
            return pool.get()
        except psycopg.OperationalError as exc:
            text = str(exc)
            if pool is not self.pool and ("authentication failed" in text or "does not exist" in text):
                # the secret's user cannot sign in (wrong password, no such role): not a passing fault
                detail = text.strip().splitlines()[-1] if text.strip() else text
                raise ApiError(400, "BadRequestException", f"FATAL: {detail}") from exc
            raise ApiError(
                504, "DatabaseUnavailableException", f"The database is unavailable: {exc}"
            ) from exc

    def _run(
        self,
        body: dict[str, Any],
        work: Callable[[psycopg.Connection[Any]], dict[str, Any]],
        translated: Translated,
    ) -> dict[str, Any]:
        """Run ``work`` on the transaction's connection, or on a pooled autocommit connection."""
        tid = body.get("transactionId")
        if tid:
            txn = self._transaction(str(tid))
            if not txn.lock.acquire(blocking=False):
                raise ApiError(400, "DatabaseErrorException", "Transaction is still running a query")
            try:
                if self._transaction_or_none(txn.id) is None:
                    raise ApiError(404, "TransactionNotFoundException", f"Transaction {txn.id} is not found")
                try:
                    return work(txn.conn)
                except psycopg.Error as exc:
                    # The Data API ends a transaction whose statement failed.
                    try:
                        self._end(txn, "ROLLBACK")
                    except psycopg.Error:
                        txn.conn.close()
                    raise self._database_error(exc, translated) from exc
                finally:
                    txn.last_used = time.monotonic()
            finally:
                txn.lock.release()
        pool: _Pool = self._local.pool
        conn = self._connection()
        try:
            return work(conn)
        except psycopg.Error as exc:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE and not conn.closed:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()
            raise self._database_error(exc, translated) from exc
        finally:
            pool.put(conn)

    def execute_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_target(body)
        sql = body.get("sql")
        if not sql or not isinstance(sql, str):
            raise _bad_request("SQL statement must be specified")
        translated = translate_placeholders(sql)
        values = _bind(translated, body.get("parameters") or [])
        options = body.get("resultSetOptions") or {}
        shape = _Shape(
            decimal_as_number=options.get("decimalReturnType") == "DOUBLE_OR_LONG",
            long_as_string=options.get("longReturnType") == "STRING",
        )
        as_json = body.get("formatRecordsAs") == "JSON"
        with_metadata = bool(body.get("includeResultMetadata"))

        def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
            cur = psycopg.RawCursor(conn)
            # Pipeline mode always uses the extended query protocol, which (like Aurora) refuses
            # several statements in one call; without it psycopg sends parameterless SQL as a simple query.
            with conn.pipeline():
                cur.execute(translated.sql, values, prepare=False)
            return self._result(cur, shape=shape, as_json=as_json, with_metadata=with_metadata)

        return self._run(body, work, translated)

    def batch_execute_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_target(body)
        sql = body.get("sql")
        if not sql or not isinstance(sql, str):
            raise _bad_request("SQL statement must be specified")
        translated = translate_placeholders(sql)
        sets = [_bind(translated, params or []) for params in body.get("parameterSets") or []]
        if not sets:
            return {"updateResults": []}

        def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
            cur = psycopg.RawCursor(conn)
            if conn.info.transaction_status == pq.TransactionStatus.INTRANS:
                cur.executemany(translated.sql, sets)
            else:  # outside a transaction the batch is applied atomically
                with conn.transaction():
                    cur.executemany(translated.sql, sets)
            return {"updateResults": [{"generatedFields": []} for _ in sets]}

        return self._run(body, work, translated)

    # ---- shaping -----------------------------------------------------------------------------

    def _column_info(self, conn: psycopg.Connection[Any], table_oid: int, column: int) -> _ColumnInfo:
        if not table_oid:
            return _ColumnInfo()
        key = (table_oid, column)
        with self._columns_lock:
            cached = self._columns.get(key)
        if cached is not None:
            return cached
        row = conn.execute(
            "SELECT n.nspname, c.relname, a.attnotnull, "
            "(a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%%') "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = %s AND a.attnum = %s",
            (table_oid, column),
        ).fetchone()
        info = _ColumnInfo() if row is None else _ColumnInfo(row[0], row[1], 0 if row[2] else 1, bool(row[3]))
        with self._columns_lock:
            self._columns[key] = info
        return info

    def _type_name(self, conn: psycopg.Connection[Any], oid: int) -> str:
        if oid in _NAME_BY_OID:
            return _NAME_BY_OID[oid]
        if oid in _ELEMENT_BY_ARRAY_OID:
            return "_" + _NAME_BY_OID[_ELEMENT_BY_ARRAY_OID[oid]]
        row = conn.execute("SELECT typname FROM pg_type WHERE oid = %s", (oid,)).fetchone()
        return str(row[0]) if row else "unknown"

    def _metadata(self, cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
        assert cur.description is not None and cur.pgresult is not None
        conn = cur.connection
        columns = []
        for i, col in enumerate(cur.description):
            oid = col.type_code
            type_name = self._type_name(conn, oid)
            info = self._column_info(conn, cur.pgresult.ftable(i), cur.pgresult.ftablecol(i))
            is_array = oid in _ELEMENT_BY_ARRAY_OID
            numeric = oid in _INT_OIDS or oid in _FLOAT_OIDS or oid == _NUMERIC_OID
            columns.append(
                {
                    "name": col.name,
                    "label": col.name,
                    "type": 2003 if is_array else _JDBC_TYPE.get(type_name, 1111),
                    "typeName": type_name,
                    "schemaName": info.schema,
                    "tableName": info.table,
                    "isAutoIncrement": info.auto_increment,
                    "isSigned": numeric,
                    "isCurrency": type_name == "money",
                    "isCaseSensitive": type_name in {"text", "varchar", "bpchar", "char", "name"},
                    "nullable": info.nullable,
                    "precision": col.precision or _PRECISION.get(type_name, 2147483647),
                    "scale": col.scale or 0,
                    "arrayBaseColumnType": _JDBC_TYPE.get(
                        _NAME_BY_OID.get(_ELEMENT_BY_ARRAY_OID.get(oid, 0), ""), 0
                    )
                    if is_array
                    else 0,
                }
            )
        return columns

    def _too_large(self) -> ApiError:
        return _bad_request(RESPONSE_TOO_LARGE)

    def _result(
        self, cur: psycopg.Cursor[Any], *, shape: _Shape, as_json: bool, with_metadata: bool
    ) -> dict[str, Any]:
        status = (cur.statusmessage or "").split()
        updated = 0
        if status and status[0] in _DML_TAGS and status[-1].isdigit():
            updated = int(status[-1])
        if cur.description is None:
            return {"numberOfRecordsUpdated": updated, "generatedFields": []}
        oids = [col.type_code for col in cur.description]
        names = [col.name for col in cur.description]
        budget = self.max_response_bytes
        pieces: list[str] = []
        size = 0
        while True:
            rows = cur.fetchmany(2000)
            if not rows:
                break
            for row in rows:
                if as_json:
                    item = json.dumps({names[i]: _json_value(v, oids[i]) for i, v in enumerate(row)})
                else:
                    item = json.dumps([_scalar_field(v, oids[i], shape) for i, v in enumerate(row)])
                size += len(item) + 2
                if size > budget:
                    raise self._too_large()
                pieces.append(item)
        response: dict[str, Any] = {"numberOfRecordsUpdated": updated, "generatedFields": []}
        if as_json:
            response["formattedRecords"] = "[" + ",".join(pieces) + "]"
        else:
            response["records"] = _Raw("[" + ", ".join(pieces) + "]")
            if with_metadata:
                response["columnMetadata"] = self._metadata(cur)
        return response

    # ---- errors ------------------------------------------------------------------------------

    def _database_error(self, exc: psycopg.Error, translated: Translated | None) -> ApiError:
        diag = exc.diag
        sqlstate = exc.sqlstate
        if sqlstate is None:
            if isinstance(exc, psycopg.OperationalError):
                return ApiError(504, "DatabaseUnavailableException", f"The database is unavailable: {exc}")
            return ApiError(500, "InternalServerErrorException", str(exc))
        primary = diag.message_primary or str(exc)
        if sqlstate == "57014" and "statement timeout" in primary:
            return ApiError(
                400,
                "StatementTimeoutException",
                "The statement timed out and was cancelled",
                dbConnectionId=0,
            )
        severity = diag.severity_nonlocalized or diag.severity or "ERROR"
        message = f"{severity}: {primary}"
        if diag.message_detail:
            message += f"\n  Detail: {diag.message_detail}"
        if diag.message_hint:
            message += f"\n  Hint: {diag.message_hint}"
        if diag.statement_position and diag.statement_position.isdigit():
            position = int(diag.statement_position)
            if translated is not None:
                position = translated.original_position(position)
            message += f"\n  Position: {position}"
        if diag.context:
            message += f"\n  Where: {diag.context}"
        return ApiError(400, "DatabaseErrorException", f"{message}; SQLState: {sqlstate}")


class _Raw(str):
    """Pre-serialised JSON, spliced into the response body as is."""


def _loads(raw: bytes) -> Any:
    """A request body, parsed by pydantic-core's JSON parser (several times faster than the standard library's on
    the multi-MiB bodies of bulk writes); whatever that parser refuses goes through `json.loads`, so exactly the
    bodies the standard library accepts are accepted."""
    try:
        return from_json(raw, cache_strings="keys")
    except ValueError:
        return json.loads(raw)


def _dumps(response: dict[str, Any]) -> bytes:
    raw = {k: v for k, v in response.items() if isinstance(v, _Raw)}
    plain = {k: v for k, v in response.items() if not isinstance(v, _Raw)}
    text = json.dumps(plain)
    if raw:
        extra = ", ".join(f"{json.dumps(k)}: {v}" for k, v in raw.items())
        text = "{" + extra + (", " + text[1:] if plain else "}")
    return text.encode("utf-8")


_OPERATIONS = {
    "/Execute": "execute_statement",
    "/BatchExecute": "batch_execute_statement",
    "/BeginTransaction": "begin_transaction",
    "/CommitTransaction": "commit_transaction",
    "/RollbackTransaction": "rollback_transaction",
}


class LocalDataApi:
    """The local Data API endpoint: ``with LocalDataApi(dsn, cluster_arn=..., ...) as api: api.url``."""

    def __init__(
        self,
        dsn: str,
        *,
        cluster_arn: str,
        secret_arn: str,
        database: str,
        host: str = "127.0.0.1",
        port: int = 0,
        statement_timeout_s: float = 45.0,
        transaction_idle_timeout_s: float = 180.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        credentials: Credentials | None = None,
    ) -> None:
        self.engine = _Engine(
            dsn,
            cluster_arn=cluster_arn,
            secret_arn=secret_arn,
            database=database,
            statement_timeout_s=statement_timeout_s,
            transaction_idle_timeout_s=transaction_idle_timeout_s,
            max_response_bytes=max_response_bytes,
            credentials=credentials,
        )
        self.cluster_arn = cluster_arn
        self.secret_arn = secret_arn
        self.database = database
        self.max_request_bytes = max_request_bytes
        self._host = host
        self._port = port
        self._faults: list[ApiError] = []
        self._faults_lock = threading.Lock()
        # "<operation>:write" (INSERT/WITH/UPDATE/DELETE statements) or "<operation>:other" -> calls (metrics)
        self.calls: collections.Counter[str] = collections.Counter()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalDataApi is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalDataApi:
        if self._server is not None:
            return self
        handler = _handler_class(self)
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = True
        self._server = server
        self._stopping.clear()
        serve = threading.Thread(target=server.serve_forever, name="local-data-api", daemon=True)
        reaper = threading.Thread(target=self._reap, name="local-data-api-reaper", daemon=True)
        self._threads = [serve, reaper]
        for thread in self._threads:
            thread.start()
        _log.info("local Data API listening on %s", self.url)
        return self

    def fail_next(
        self,
        count: int = 1,
        *,
        code: str = "DatabaseResumingException",
        message: str = "The Aurora DB instance is resuming after being auto-paused. Please wait a few seconds "
        "and try again.",
        status: int = 400,
    ) -> None:
        """Answer the next ``count`` calls with an error instead of running them (fault injection).

        The default imitates a cluster waking from auto-pause; pass e.g. ``code="ThrottlingException"``
        or ``code="InternalServerErrorException", status=500`` for other transient faults.
        """
        with self._faults_lock:
            self._faults.extend(ApiError(status, code, message) for _ in range(count))

    def _take_fault(self) -> ApiError | None:
        with self._faults_lock:
            return self._faults.pop(0) if self._faults else None

    def _reap(self) -> None:
        interval = min(5.0, max(0.05, self.engine.transaction_idle_timeout_s / 4))
        while not self._stopping.wait(interval):
            self.engine.reap_idle_transactions()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None
        self.engine.close()

    def __enter__(self) -> LocalDataApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_class(api: LocalDataApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "closecast-local-data-api"
        # Headers and body go out in separate writes; with Nagle on, keep-alive calls stall ~40 ms
        # on the client's delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, payload: bytes, error_code: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if error_code:
                self.send_header("x-amzn-ErrorType", error_code)
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, error: ApiError) -> None:
            body = {"message": error.message, **error.extra}
            self._send(error.status, json.dumps(body).encode("utf-8"), error.code)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _HARD_BODY_CAP:
                self.close_connection = True
                self._error(ApiError(413, "RequestEntityTooLargeException", "Request entity too large"))
                return
            raw = self.rfile.read(length) if length else b""
            if length > api.max_request_bytes:
                self._error(
                    ApiError(
                        413,
                        "RequestEntityTooLargeException",
                        f"Request size {length} bytes exceeds the limit of {api.max_request_bytes} bytes",
                    )
                )
                return
            operation = _OPERATIONS.get(self.path.split("?", 1)[0])
            if operation is None:
                self._error(ApiError(404, "UnknownOperationException", f"Unknown operation {self.path}"))
                return
            try:
                body = _loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body is not an object")
            except ValueError:
                self._error(_bad_request("Request body is not valid JSON"))
                return
            verb = (str(body.get("sql") or "").split(None, 1) or [""])[0].upper()
            writes = verb in ("INSERT", "WITH", "UPDATE", "DELETE")
            with api._faults_lock:
                api.calls[f"{operation}:{'write' if writes else 'other'}"] += 1
            try:
                fault = api._take_fault()
                if fault is not None:
                    raise fault
                response = getattr(api.engine, operation)(body)
                payload = _dumps(response)
                if len(payload) > api.engine.max_response_bytes:
                    raise _bad_request(RESPONSE_TOO_LARGE)
            except ApiError as error:
                self._error(error)
                return
            except Exception as exc:  # a bug here must still answer like the service would
                _log.exception("local Data API failed on %s", operation)
                self._error(ApiError(500, "InternalServerErrorException", f"{type(exc).__name__}: {exc}"))
                return
            self._send(200, payload)

    return Handler
