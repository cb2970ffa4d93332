"""All SQL on `job`."""

from __future__ import annotations

import uuid
from typing import Any

from closecast.db.data_api import DataApi
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.errors import Conflict

COLUMNS = (
    "id::text AS id, kind, status, params, client_token, result, error, attempts, created_at, started_at, "
    "finished_at, updated_at"
)

_INSERT_SQL = (
    "INSERT INTO job (id, kind, status, params, client_token) "
    "VALUES (:id, :kind, 'queued', :params, :client_token) "
    f"ON CONFLICT (client_token) DO NOTHING RETURNING {COLUMNS}"
)

# A job is claimed once: queued -> running. A job left `running` longer than `stale_seconds` (its function
# died or timed out before it could record the end) may be claimed again by the message's next delivery.
_CLAIM_SQL = (
    "UPDATE job SET status = 'running', attempts = attempts + 1, started_at = now(), finished_at = NULL, "
    "error = NULL, updated_at = now() WHERE id = :id AND (status = 'queued' OR (status = 'running' AND "
    f"started_at < now() - make_interval(secs => :stale_seconds))) RETURNING {COLUMNS}"
)

_FINISH_SQL = (
    "UPDATE job SET status = :status, result = :result, error = :error, finished_at = now(), updated_at = now() "
    f"WHERE id = :id AND status = 'running' RETURNING {COLUMNS}"
)

# A transient fault: back to the queue for the message's next delivery.
_RELEASE_SQL = (
    "UPDATE job SET status = 'queued', error = :error, updated_at = now() "
    f"WHERE id = :id AND status = 'running' RETURNING {COLUMNS}"
)


def create(
    api: DataApi, kind: str, params: dict[str, Any], client_token: str | None
) -> tuple[dict[str, Any], bool]:
    """(the job, whether it was created now). With a client token already used, the job it created is
    returned (created False), or Conflict if that job asked for something else."""
    job_id = uuid.uuid4()
    rows = api.execute(
        _INSERT_SQL, {"id": job_id, "kind": kind, "params": params, "client_token": client_token}
    ).records
    if rows:
        return rows[0], True
    existing = api.execute(
        f"SELECT {COLUMNS} FROM job WHERE client_token = :client_token", {"client_token": client_token}
    ).records
    if not existing:  # the other job vanished in between: cannot happen without deletes
        raise Conflict(f"client_token {client_token!r} is in use")
    job = existing[0]
    if job["kind"] != kind or job["params"] != params:
        raise Conflict(f"client_token {client_token!r} was already used for another job ({job['id']})")
    return job, False


def get(api: DataApi, job_id: str) -> dict[str, Any] | None:
    rows = api.execute(f"SELECT {COLUMNS} FROM job WHERE id = :id", {"id": uuid.UUID(job_id)}).records
    return rows[0] if rows else None


def list_jobs(api: DataApi, page: PageRequest, *, kind: str | None, status: str | None) -> PageResult:
    clauses, params = where_clauses({"kind": ("kind = :kind", kind), "status": ("status = :status", status)})
    return list_page(
        api,
        select=COLUMNS,
        table="job",
        where=clauses,
        params=params,
        order_by="created_at DESC, id",
        request=page,
    )


def claim(api: DataApi, job_id: str, *, stale_seconds: int) -> dict[str, Any] | None:
    rows = api.execute(_CLAIM_SQL, {"id": uuid.UUID(job_id), "stale_seconds": stale_seconds}).records
    return rows[0] if rows else None


def succeed(api: DataApi, job_id: str, result: dict[str, Any]) -> dict[str, Any] | None:
    return _finish(api, job_id, "succeeded", result, None)


def fail(api: DataApi, job_id: str, error: str) -> dict[str, Any] | None:
    return _finish(api, job_id, "failed", None, error[:4000])


def release(api: DataApi, job_id: str, error: str) -> dict[str, Any] | None:
    rows = api.execute(_RELEASE_SQL, {"id": uuid.UUID(job_id), "error": error[:4000]}).records
    return rows[0] if rows else None


def _finish(
    api: DataApi, job_id: str, status: str, result: dict[str, Any] | None, error: str | None
) -> dict[str, Any] | None:
    rows = api.execute(
        _FINISH_SQL, {"id": uuid.UUID(job_id), "status": status, "result": result, "error": error}
    ).records
    return rows[0] if rows else None


def fail_queued(api: DataApi, job_id: str, error: str) -> None:
    api.execute(
        "UPDATE job SET status = 'failed', error = :error, finished_at = now(), updated_at = now() "
        "WHERE id = :id AND status = 'queued'",
        {"id": uuid.UUID(job_id), "error": error[:4000]},
    )
