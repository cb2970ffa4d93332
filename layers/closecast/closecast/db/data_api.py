"""A small, typed client for the RDS Data API (Aurora PostgreSQL).

Everything the functions do with the database goes through :class:`DataApi`.  It takes an injected
boto3 ``rds-data`` client (a real one on AWS, one pointed at the local endpoint in the local cloud, or a
stubbed one in unit tests) and adds what the raw API lacks:

* parameters from plain Python values (``{"name": value}``, referenced in SQL as ``:name``), with the
  Data API ``typeHint`` where PostgreSQL needs one;
* records decoded into ``dict``s of Python values, typed by the column metadata;
* reads of any size, paged under the 1 MiB response limit (:meth:`DataApi.query`);
* batches of any size, split under the 4 MiB request limit (:meth:`DataApi.batch_execute`);
* transactions (:meth:`DataApi.transaction`);
* retries with exponential backoff and jitter while the cluster resumes or the service throttles;
* typed errors (:mod:`closecast.db.errors`).

Values are never formatted into SQL: parameters travel separately, typed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from closecast.db import errors

__all__ = [
    "MAX_REQUEST_BYTES",
    "MAX_RESPONSE_BYTES",
    "DataApi",
    "Result",
    "decode_field",
    "decode_value",
    "to_parameter",
    "to_parameters",
]

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The Data API refuses requests larger than 4 MiB."""

MAX_RESPONSE_BYTES = 1024 * 1024
"""The Data API refuses to return more than 1 MiB of response data."""

_PAGE_TARGET_BYTES = 512 * 1024
""":meth:`DataApi.query` sizes pages to aim at half the response limit, leaving room for estimate error."""

_BATCH_HEADROOM_BYTES = 64 * 1024
"""Bytes kept free in every BatchExecute request beyond the measured envelope."""

# Message of Aurora Serverless v1 while resuming (reported as BadRequestException).
_COMMUNICATIONS_LINK_FAILURE = "communications link failure"

_READ_ONLY_RE = re.compile(r"^\s*(?:\(\s*)*(?:SELECT|VALUES|SHOW|TABLE|EXPLAIN)\b", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Parameters


def to_parameter(name: str, value: Any) -> dict[str, Any]:
    """One ``SqlParameter`` from a Python value.

    ``None`` -> NULL; ``bool``, ``int``, ``float``, ``str``, ``bytes``; ``datetime.date`` (DATE),
    ``datetime.datetime`` (TIMESTAMP, aware values converted to UTC), ``datetime.time`` (TIME), ``Decimal``
    (DECIMAL), ``uuid.UUID`` (UUID), ``dict``/``list`` (JSON).  Non-finite floats are refused: the Data API
    carries doubles as JSON numbers, which have no NaN or infinity (pass ``None`` for a missing value).
    """
    param: dict[str, Any] = {"name": name}
    if value is None:
        param["value"] = {"isNull": True}
    elif isinstance(value, bool):  # before int: bool is an int subclass
        param["value"] = {"booleanValue": value}
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"parameter {name!r}: {value} does not fit in a 64-bit integer")
        param["value"] = {"longValue": value}
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"parameter {name!r}: non-finite float {value!r} cannot be sent; use None")
        param["value"] = {"doubleValue": value}
    elif isinstance(value, str):
        param["value"] = {"stringValue": value}
    elif isinstance(value, dt.datetime):  # before date: datetime is a date subclass
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        param["value"] = {"stringValue": value.strftime("%Y-%m-%d %H:%M:%S.%f")}
        param["typeHint"] = "TIMESTAMP"
    elif isinstance(value, dt.date):
        param["value"] = {"stringValue": value.isoformat()}
        param["typeHint"] = "DATE"
    elif isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ValueError(f"parameter {name!r}: time with a time zone is not supported by the Data API")
        param["value"] = {"stringValue": value.strftime("%H:%M:%S.%f")}
        param["typeHint"] = "TIME"
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"parameter {name!r}: non-finite Decimal {value!r}")
        param["value"] = {"stringValue": format(value, "f")}
        param["typeHint"] = "DECIMAL"
    elif isinstance(value, uuid.UUID):
        param["value"] = {"stringValue": str(value)}
        param["typeHint"] = "UUID"
    elif isinstance(value, (dict, list, tuple)):
        param["value"] = {"stringValue": json.dumps(value, allow_nan=False, separators=(",", ":"))}
        param["typeHint"] = "JSON"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        param["value"] = {"blobValue": bytes(value)}
    else:
        raise TypeError(f"parameter {name!r}: unsupported type {type(value).__name__}")
    return param


def to_parameters(params: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``SqlParameter`` list from a ``{"name": value}`` mapping."""
    if not params:
        return []
    return [to_parameter(name, value) for name, value in params.items()]


# --------------------------------------------------------------------------------------------------
# Decoding


def _parse_timestamp(text: str) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS[.f{1,9}]`` (the Data API's format, any number of fraction digits)."""
    text = text.strip().replace("T", " ")
    main, _, fraction = text.partition(".")
    # A zone suffix, should one appear, is ignored here: the Data API reports timestamptz in UTC.
    fraction = re.sub(r"[^0-9].*$", "", fraction)
    main = re.sub(r"(?:[+-]\d\d(?::?\d\d)?|Z)$", "", main)
    value = dt.datetime.strptime(main, "%Y-%m-%d %H:%M:%S")
    if fraction:
        value = value.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return value


def _decode_array(array: Mapping[str, Any]) -> list[Any]:
    for key in ("longValues", "doubleValues", "stringValues", "booleanValues"):
        if key in array:
            return list(array[key])
    if "arrayValues" in array:
        return [_decode_array(inner) for inner in array["arrayValues"]]
    return []


def decode_field(fld: Mapping[str, Any]) -> Any:
    """The raw Python value of one ``Field`` (no column typing)."""
    if fld.get("isNull"):
        return None
    if "longValue" in fld:
        return int(fld["longValue"])
    if "doubleValue" in fld:
        return float(fld["doubleValue"])
    if "stringValue" in fld:
        return fld["stringValue"]
    if "booleanValue" in fld:
        return bool(fld["booleanValue"])
    if "blobValue" in fld:
        blob = fld["blobValue"]
        return base64.b64decode(blob) if isinstance(blob, str) else bytes(blob)
    if "arrayValue" in fld:
        return _decode_array(fld["arrayValue"])
    return None


_NUMERIC_TYPES = frozenset({"numeric", "decimal"})
_JSON_TYPES = frozenset({"json", "jsonb"})


def decode_value(value: Any, type_name: str | None) -> Any:
    """Type a raw value by the column's ``typeName`` (PostgreSQL type name).

    ``date`` -> ``datetime.date``; ``timestamptz`` -> aware UTC ``datetime``; ``timestamp`` -> naive
    ``datetime``; ``time`` -> ``datetime.time``; ``json``/``jsonb`` -> parsed object; ``numeric`` ->
    ``Decimal``.  Other values are returned as they came (``uuid`` stays a ``str``).
    """
    if value is None or not isinstance(value, str) or not type_name:
        return value
    name = type_name.lower()
    if name == "date":
        return dt.date.fromisoformat(value) if value[:1].isdigit() else value
    if name in {"timestamptz", "timestamp with time zone"}:
        return _parse_timestamp(value).replace(tzinfo=dt.UTC) if value[:1].isdigit() else value
    if name in {"timestamp", "timestamp without time zone"}:
        return _parse_timestamp(value) if value[:1].isdigit() else value
    if name in {"time", "time without time zone"}:
        return dt.time.fromisoformat(value)
    if name in _JSON_TYPES:
        return json.loads(value)
    if name in _NUMERIC_TYPES:
        return Decimal(value)
    return value


@dataclass(frozen=True)
class Result:
    """What one statement returned: decoded rows and the number of rows it changed."""

    records: list[dict[str, Any]] = field(default_factory=list)
    updated: int = 0
    columns: list[str] = field(default_factory=list)


def _decode_response(response: Mapping[str, Any]) -> Result:
    metadata = response.get("columnMetadata") or []
    names = [col.get("label") or col.get("name") or f"column{i}" for i, col in enumerate(metadata)]
    types = [col.get("typeName") for col in metadata]
    records = []
    for row in response.get("records") or []:
        if names:
            records.append(
                {
                    names[i]: decode_value(decode_field(fld), types[i] if i < len(types) else None)
                    for i, fld in enumerate(row)
                }
            )
        else:  # no metadata (should not happen: we always ask for it)
            records.append({f"column{i}": decode_field(fld) for i, fld in enumerate(row)})
    return Result(records=records, updated=int(response.get("numberOfRecordsUpdated") or 0), columns=names)


def _wire_size(obj: Any) -> int:
    """Bytes of ``obj`` serialised the way botocore serialises a rest-json body (blobs as base64)."""

    def default(value: Any) -> str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(value)).decode("ascii")
        raise TypeError(type(value).__name__)

    return len(json.dumps(obj, default=default).encode("utf-8"))


# --------------------------------------------------------------------------------------------------
# The client


def _default_rng() -> random.Random:
    return random.Random()  # noqa: S311 - jitter, not security


class DataApi:
    """Aurora PostgreSQL through the RDS Data API.

    :param client: a boto3 ``rds-data`` client (injected so tests and the local cloud can pass their own).
    :param resource_arn: the Aurora cluster ARN.
    :param secret_arn: the Secrets Manager secret holding the database credentials.
    :param database: the database name.
    :param max_attempts: calls per statement for retryable failures (the first call included).
    :param max_retry_seconds: total backoff budget; together with ``max_attempts`` this covers a cluster
        resuming from auto-pause (about 15 s).
    :param base_delay: first backoff step; each further step doubles, capped at ``max_delay``, jittered.
    :param sleep: ``time.sleep`` by default; tests pass a recorder to make backoff instant.
    """

    def __init__(
        self,
        client: Any,
        resource_arn: str,
        secret_arn: str,
        database: str,
        *,
        max_attempts: int = 10,
        max_retry_seconds: float = 30.0,
        base_delay: float = 0.25,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self.resource_arn = resource_arn
        self.secret_arn = secret_arn
        self.database = database
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or _default_rng()

    # ---- low level ---------------------------------------------------------------------------

    def _envelope(self, transaction_id: str | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {
            "resourceArn": self.resource_arn,
            "secretArn": self.secret_arn,
            "database": self.database,
        }
        if transaction_id:
            request["transactionId"] = transaction_id
        return request

    def _call(self, operation: str, request: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """Call one operation with retries; raise a typed error when it finally fails."""
        method = getattr(self._client, operation)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return dict(method(**request))
            except Exception as exc:
                code, message, status = _describe(exc)
                if code == "":
                    raise  # not a service or connection error (e.g. a parameter validation bug)
                if not _is_retryable(code, message, idempotent=idempotent):
                    raise _typed(code, message, status) from exc
                delay = self._backoff(attempt)
                if attempt >= self.max_attempts or waited + delay > self.max_retry_seconds:
                    raise _exhausted(code, message, attempt) from exc
                self._sleep(delay)
                waited += delay

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        # "Equal jitter": at least half the exponential step, so a resuming cluster is not hammered.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    # ---- statements --------------------------------------------------------------------------

    def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        transaction_id: str | None = None,
        idempotent: bool | None = None,
    ) -> Result:
        """Run one statement and return its decoded records and update count.

        Records come from ``includeResultMetadata=True`` rather than ``formatRecordsAs="JSON"``: the
        column metadata carries each column's PostgreSQL type name, which is what lets dates,
        timestamps, numerics and JSON columns decode to their Python types (the JSON format returns
        them as bare strings with no type information, and its field is blank of metadata).

        ``idempotent`` (default: true for statements starting with SELECT/VALUES/SHOW/TABLE/EXPLAIN)
        allows retrying after failures where the statement may already have run (internal server
        error, statement timeout).  The result must fit in 1 MiB: use :meth:`query` for large reads.
        """
        request = self._envelope(transaction_id)
        request["sql"] = sql
        request["parameters"] = to_parameters(params)
        request["includeResultMetadata"] = True
        self._check_request_size(request)
        if idempotent is None:
            idempotent = bool(_READ_ONLY_RE.match(sql))
        return _decode_response(self._call("execute_statement", request, idempotent=idempotent))

    def iter_query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 1000,
        max_page_size: int = 20_000,
        transaction_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every row of a SELECT, fetched in pages that each stay under the 1 MiB response limit.

        The statement is wrapped as ``SELECT * FROM (<sql>) AS _q LIMIT :_limit OFFSET :_offset``.
        **The SQL must end in an ORDER BY over a unique key**, or pages may overlap or skip rows; it must
        not use the parameter names ``_limit``/``_offset``.  Pages after the first are sized from the
        measured size of the previous one (aiming at half the limit, at most ``max_page_size`` rows); if
        the service still refuses a page as too large, the page size is halved and that page retried (later
        pages never grow back past a refused size).
        Without a ``transaction_id`` each page is its own snapshot: rows written meanwhile may shift pages.
        """
        inner = sql.strip().rstrip(";").strip()
        paged = f"SELECT * FROM ({inner}) AS _q LIMIT :_limit OFFSET :_offset"
        base = dict(params or {})
        if "_limit" in base or "_offset" in base:
            raise ValueError("parameters _limit and _offset are reserved by query()")
        limit = max(1, page_size)
        ceiling = max(limit, max_page_size)  # lowered to below any page size the service refused
        offset = 0
        while True:
            try:
                request = self._envelope(transaction_id)
                request["sql"] = paged
                request["parameters"] = to_parameters({**base, "_limit": limit, "_offset": offset})
                request["includeResultMetadata"] = True
                self._check_request_size(request)
                response = self._call("execute_statement", request, idempotent=True)
            except errors.ResponseTooLarge:
                if limit == 1:
                    raise
                limit = max(1, limit // 2)
                ceiling = limit
                continue
            page = _decode_response(response)
            yield from page.records
            n = len(page.records)
            if n < limit:
                return
            offset += n
            estimated = _wire_size(response.get("records") or []) or 1
            per_row = estimated / n
            limit = max(1, min(ceiling, int(_PAGE_TARGET_BYTES / per_row)))

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 1000,
        max_page_size: int = 20_000,
        transaction_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """All rows of a SELECT as a list, read in pages (see :meth:`iter_query`; SQL needs an ORDER BY)."""
        return list(
            self.iter_query(
                sql,
                params,
                page_size=page_size,
                max_page_size=max_page_size,
                transaction_id=transaction_id,
            )
        )

    def batch_execute(
        self,
        sql: str,
        param_sets: Sequence[Mapping[str, Any]],
        *,
        transaction_id: str | None = None,
        max_sets_per_call: int | None = None,
        idempotent: bool = False,
    ) -> int:
        """Run one DML statement once per parameter set, in as few BatchExecuteStatement calls as fit.

        Each call is kept under the 4 MiB request limit: every parameter set is measured as serialised
        JSON and sets are packed until the budget (4 MiB minus the measured envelope minus 64 KiB
        headroom) is used.  Calls are separate unless ``transaction_id`` is given: without a
        transaction, a failure part-way leaves the earlier calls applied (make the statement idempotent,
        e.g. an upsert, and send again).

        Returns the number of parameter sets executed.  The Data API does not report rows affected per
        set (``updateResults`` has one entry per set, carrying only generated fields), so an
        ``ON CONFLICT DO NOTHING`` that skipped a row still counts one.
        """
        if not param_sets:
            return 0
        envelope = self._envelope(transaction_id)
        envelope["sql"] = sql
        envelope["parameterSets"] = []
        budget = MAX_REQUEST_BYTES - _wire_size(envelope) - _BATCH_HEADROOM_BYTES
        if budget <= 0:
            raise errors.RequestTooLarge("the SQL text alone is too large for a Data API request")
        executed = 0
        chunk: list[list[dict[str, Any]]] = []
        used = 0
        for index, params in enumerate(param_sets):
            encoded = to_parameters(params)
            size = _wire_size(encoded) + 2  # ", " between sets
            if size > budget:
                raise errors.RequestTooLarge(
                    f"parameter set {index} is {size} bytes; "
                    f"a Data API request is at most {MAX_REQUEST_BYTES}"
                )
            full = used + size > budget or (max_sets_per_call is not None and len(chunk) >= max_sets_per_call)
            if chunk and full:
                executed += self._batch_call(envelope, chunk, idempotent=idempotent)
                chunk, used = [], 0
            chunk.append(encoded)
            used += size
        if chunk:
            executed += self._batch_call(envelope, chunk, idempotent=idempotent)
        return executed

    def _batch_call(
        self, envelope: dict[str, Any], chunk: list[list[dict[str, Any]]], *, idempotent: bool
    ) -> int:
        request = {**envelope, "parameterSets": chunk}
        response = self._call("batch_execute_statement", request, idempotent=idempotent)
        results = response.get("updateResults")
        return len(results) if results is not None else len(chunk)

    def _check_request_size(self, request: Mapping[str, Any]) -> None:
        size = _wire_size(request)
        if size > MAX_REQUEST_BYTES:
            raise errors.RequestTooLarge(
                f"request is {size} bytes; a Data API request is at most {MAX_REQUEST_BYTES} bytes"
            )

    # ---- transactions ------------------------------------------------------------------------

    def begin(self) -> str:
        """Start a transaction; returns its id (pass it as ``transaction_id``).

        The service ends a transaction left idle for 3 minutes.
        """
        response = self._call("begin_transaction", self._envelope(), idempotent=True)
        return str(response["transactionId"])

    def commit(self, transaction_id: str) -> str:
        """Commit; returns the service's status text."""
        request = {
            "resourceArn": self.resource_arn,
            "secretArn": self.secret_arn,
            "transactionId": transaction_id,
        }
        response = self._call("commit_transaction", request, idempotent=False)
        return str(response.get("transactionStatus", ""))

    def rollback(self, transaction_id: str) -> str:
        """Roll back; returns the service's status text."""
        request = {
            "resourceArn": self.resource_arn,
            "secretArn": self.secret_arn,
            "transactionId": transaction_id,
        }
        response = self._call("rollback_transaction", request, idempotent=True)
        return str(response.get("transactionStatus", ""))

    @contextmanager
    def transaction(self) -> Iterator[str]:
        """``with api.transaction() as tid:`` — commits on success, rolls back on any exception.

        A statement error inside the transaction may already have ended it on the service side; the
        rollback then finds no transaction, which is ignored so that the original error propagates.
        """
        tid = self.begin()
        try:
            yield tid
        except BaseException:
            with suppress(errors.TransactionNotFound):
                self.rollback(tid)
            raise
        self.commit(tid)


# --------------------------------------------------------------------------------------------------
# Error classification


def _describe(exc: Exception) -> tuple[str, str, int | None]:
    """(code, message, HTTP status) of a botocore error, or of a connection failure."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return str(error.get("Code") or ""), str(error.get("Message") or ""), status
    # botocore's connection errors, by class name (so the layer needs no botocore import for typing).
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"}:
        return "ConnectionError", str(exc), None
    if names & {"ConnectionClosedError", "ReadTimeoutError", "HTTPClientError"}:
        return "AmbiguousConnectionError", str(exc), None
    return "", str(exc), None


def _is_retryable(code: str, message: str, *, idempotent: bool) -> bool:
    if code in errors.RETRY_ALWAYS or code == "ConnectionError":
        return True
    if code == "BadRequestException" and _COMMUNICATIONS_LINK_FAILURE in message.lower():
        return True
    return idempotent and (code in errors.RETRY_IF_IDEMPOTENT or code == "AmbiguousConnectionError")


def _typed(code: str, message: str, status: int | None) -> errors.DataApiError | errors.ConfigurationError:
    if code in {"ConnectionError", "AmbiguousConnectionError"}:
        return errors.TransientDatabaseError(message, code=code)
    return errors.from_client_error(code, message, http_status=status)


def _exhausted(code: str, message: str, attempts: int) -> errors.DataApiError:
    text = f"{message or code} (gave up after {attempts} attempts)"
    if code == "DatabaseResumingException" or _COMMUNICATIONS_LINK_FAILURE in message.lower():
        return errors.DatabaseResuming(text, code=code, attempts=attempts)
    if code == "StatementTimeoutException":
        return errors.StatementTimeout(text, code=code)
    return errors.TransientDatabaseError(text, code=code, attempts=attempts)
