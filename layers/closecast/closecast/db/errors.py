"""Typed errors raised by :mod:`closecast.db.data_api`.

The RDS Data API reports every failure as an AWS error code plus a free-text
message.  Callers should not have to match on that text, so the client turns
each failure into one of the classes below, once, in :func:`from_client_error`.

Shapes the mapping relies on (checked against public reports of real Aurora
PostgreSQL answers and the botocore ``rds-data`` model):

* SQL errors arrive as ``DatabaseErrorException`` (older clusters: ``BadRequestException``)
  whose message is the PostgreSQL JDBC rendering of the server error followed by
  the SQLSTATE, e.g.::

      ERROR: relation "x" does not exist
        Position: 15; SQLState: 42P01
      ERROR: duplicate key value violates unique constraint "parent_pkey"
        Detail: Key (id)=(17) already exists.; SQLState: 23505

* An over-large result is refused with the text
  ``Database returned more than the allowed response size limit``
  (reported as ``BadRequestException``; some clients also see it as
  ``DatabaseErrorException``, so both are accepted).
* ``DatabaseResumingException`` while an auto-paused Aurora Serverless v2 cluster wakes up.
* ``TransactionNotFoundException`` / ``NotFoundException`` (or, on older clusters,
  ``BadRequestException: Transaction <id> is not found``) for an unknown or ended transaction.
"""

from __future__ import annotations

import re
from typing import Any

from closecast.errors import ConfigurationError

__all__ = [
    "RETRY_ALWAYS",
    "RETRY_IF_IDEMPOTENT",
    "CheckViolation",
    "ConfigurationError",
    "DataApiError",
    "DatabaseError",
    "DatabaseResuming",
    "ForeignKeyViolation",
    "NotNullViolation",
    "RequestTooLarge",
    "ResponseTooLarge",
    "SerializationFailure",
    "StatementTimeout",
    "TransactionNotFound",
    "TransientDatabaseError",
    "UndefinedTable",
    "UniqueViolation",
    "database_error_from_message",
    "from_client_error",
    "parse_database_message",
]

RESPONSE_TOO_LARGE_TEXT = "Database returned more than the allowed response size limit"


class DataApiError(Exception):
    """Base class: any failure of a Data API call.

    ``code`` is the AWS error code (``x-amzn-ErrorType``) when one was received.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# The one list of retryable Data API error codes (the client retries by it; what is left after the retries is
# a TransientDatabaseError). Codes after which the statement certainly did not run: always safe to send again.
RETRY_ALWAYS = frozenset(
    {
        "DatabaseResumingException",
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableError",
        "ServiceUnavailableException",
        "DatabaseUnavailableException",
    }
)
# Codes after which the statement may or may not have run: retried only for idempotent statements.
RETRY_IF_IDEMPOTENT = frozenset({"InternalServerErrorException", "StatementTimeoutException"})


class TransientDatabaseError(DataApiError):
    """A failure that is expected to go away (throttling, service unavailable, resuming).

    Raised only after the client's retries are exhausted; ``attempts`` says how many calls were made.
    Event-source handlers should report the records as failed so that they are delivered again.
    """

    def __init__(self, message: str, *, code: str | None = None, attempts: int = 1) -> None:
        super().__init__(message, code=code)
        self.attempts = attempts


class DatabaseResuming(TransientDatabaseError):
    """The Aurora Serverless cluster was paused and is still resuming (``DatabaseResumingException``)."""


class StatementTimeout(DataApiError):
    """The statement ran past the Data API call timeout (45 s) and was cancelled.

    Not retried automatically: a write may or may not have been applied.
    """


class ResponseTooLarge(DataApiError):
    """The result exceeded the 1 MiB response limit. Page the query (see ``DataApi.query``)."""


class RequestTooLarge(DataApiError):
    """The request exceeded the 4 MiB request limit. Split the batch (see ``DataApi.batch_execute``)."""


class TransactionNotFound(DataApiError):
    """The transaction id is unknown: never begun, already ended, expired, or aborted by an error."""


class DatabaseError(DataApiError):
    """An error reported by PostgreSQL itself.

    ``pg_message`` is the primary message (without ``ERROR:``), ``sqlstate`` the five-character
    SQLSTATE code, ``detail``/``hint``/``position`` the optional fields when the message carried them.
    """

    sqlstate_code: str | None = None

    def __init__(
        self,
        message: str,
        sqlstate: str | None,
        *,
        code: str | None = None,
        pg_message: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.sqlstate = sqlstate
        self.pg_message = pg_message if pg_message is not None else message
        self.detail = detail
        self.hint = hint
        self.position = position

    @property
    def is_data_error(self) -> bool:
        """The statement's data is refused (SQLSTATE class 22 data exception, 23 integrity violation):
        sending it again cannot succeed. Everything else (deadlocks, missing tables, connections) may."""
        return bool(self.sqlstate) and str(self.sqlstate)[:2] in ("22", "23")

    @property
    def constraint(self) -> str | None:
        """The constraint named in the message, when there is one (unique, check, foreign key)."""
        match = re.search(r'constraint "([^"]+)"', self.pg_message)
        return match.group(1) if match else None


class UniqueViolation(DatabaseError):
    sqlstate_code = "23505"


class ForeignKeyViolation(DatabaseError):
    sqlstate_code = "23503"


class NotNullViolation(DatabaseError):
    sqlstate_code = "23502"


class CheckViolation(DatabaseError):
    sqlstate_code = "23514"


class UndefinedTable(DatabaseError):
    sqlstate_code = "42P01"


class SerializationFailure(DatabaseError):
    """40001 serialization failure or 40P01 deadlock: the transaction may be run again."""

    sqlstate_code = "40001"


_BY_SQLSTATE: dict[str, type[DatabaseError]] = {
    cls.sqlstate_code: cls
    for cls in (UniqueViolation, ForeignKeyViolation, NotNullViolation, CheckViolation, UndefinedTable)
    if cls.sqlstate_code
}
_BY_SQLSTATE["40001"] = SerializationFailure
_BY_SQLSTATE["40P01"] = SerializationFailure

_SQLSTATE_RE = re.compile(r";\s*SQLState:\s*([0-9A-Z]{5})\s*$")
_SEVERITY_RE = re.compile(r"^(ERROR|FATAL|PANIC|WARNING):\s*")
_FIELD_RE = re.compile(
    r"\n  (Detail|Hint|Position|Where|Routine|File|Line|Internal Query|Internal Position): "
)


def parse_database_message(message: str) -> dict[str, Any]:
    """Split an Aurora SQL error message into its parts.

    Returns a dict with ``sqlstate``, ``pg_message``, ``detail``, ``hint``, ``position`` (missing parts are
    ``None``).  Text that does not follow the format is returned whole as ``pg_message``.
    """
    text = message.strip()
    sqlstate = None
    match = _SQLSTATE_RE.search(text)
    if match:
        sqlstate = match.group(1)
        text = text[: match.start()]
    text = _SEVERITY_RE.sub("", text, count=1)
    parts = _FIELD_RE.split(text)
    fields: dict[str, str] = {}
    for name, value in zip(parts[1::2], parts[2::2], strict=False):
        fields[name] = value.strip()
    position = None
    if fields.get("Position", "").isdigit():
        position = int(fields["Position"])
    return {
        "sqlstate": sqlstate,
        "pg_message": parts[0].strip(),
        "detail": fields.get("Detail"),
        "hint": fields.get("Hint"),
        "position": position,
    }


def database_error_from_message(message: str, *, code: str | None = None) -> DatabaseError:
    """Build the most specific :class:`DatabaseError` subclass for an Aurora SQL error message."""
    parts = parse_database_message(message)
    cls = _BY_SQLSTATE.get(parts["sqlstate"] or "", DatabaseError)
    return cls(
        message,
        parts["sqlstate"],
        code=code,
        pg_message=parts["pg_message"],
        detail=parts["detail"],
        hint=parts["hint"],
        position=parts["position"],
    )


_CONFIGURATION_CODES = frozenset(
    {
        "AccessDeniedException",
        "ForbiddenException",
        "HttpEndpointNotEnabledException",
        "InvalidSecretException",
        "SecretsErrorException",
        "DatabaseNotFoundException",
        "InvalidResourceStateException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    }
)
_TRANSACTION_NOT_FOUND_RE = re.compile(
    r"transaction\b.*\b(?:is not|isn't|not) found", re.IGNORECASE | re.DOTALL
)


def from_client_error(
    code: str, message: str, *, http_status: int | None = None
) -> DataApiError | ConfigurationError:
    """Map one AWS error (code, message, HTTP status) to a typed error.

    Retryable codes are *not* special-cased here; the client decides about retries first and calls
    this for what is left (and for retryable errors once attempts run out, which then map to
    :class:`TransientDatabaseError` / :class:`DatabaseResuming`).
    """
    if RESPONSE_TOO_LARGE_TEXT.lower() in message.lower():
        return ResponseTooLarge(message, code=code)
    if http_status == 413 or code in {"RequestEntityTooLargeException", "PayloadTooLargeException"}:
        return RequestTooLarge(message, code=code)
    if code == "DatabaseResumingException":
        return DatabaseResuming(message, code=code)
    if code == "StatementTimeoutException":
        return StatementTimeout(message, code=code)
    if code in {"TransactionNotFoundException"} or _TRANSACTION_NOT_FOUND_RE.search(message):
        return TransactionNotFound(message, code=code)
    if code == "UnsupportedResultException" and "size" in message.lower():
        return ResponseTooLarge(message, code=code)
    if code == "DatabaseErrorException" or (code == "BadRequestException" and "SQLState:" in message):
        return database_error_from_message(message, code=code)
    if code == "BadRequestException" and "request" in message.lower() and "too large" in message.lower():
        return RequestTooLarge(message, code=code)
    if code in _CONFIGURATION_CODES or code == "NotFoundException":
        return ConfigurationError(message, code=code)
    if code in RETRY_ALWAYS or code in RETRY_IF_IDEMPOTENT:
        return TransientDatabaseError(message or code, code=code)
    return DataApiError(message or code, code=code)
