"""All SQL on `champion` and `promotion`: one champion per model name, every decision recorded."""

from __future__ import annotations

from typing import Any

from closecast.db.data_api import DataApi
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses

PROMOTION_COLUMNS = (
    "id, name, model_id, previous_model_id, decision, decided_by, date_id, evidence, job_id::text AS job_id, "
    "created_at"
)
CHAMPION_COLUMNS = (
    "c.name, c.model_id, c.promotion_id, c.updated_at, m.version, m.artifact_uri, m.metadata_uri, "
    "m.last_trained_date_id"
)

# Promote `model_id` to champion of its name and record why, in one statement. With :check_previous, only when
# the champion is still :previous_model_id (compare and set: a manual change meanwhile is not overwritten).
_PROMOTE_SQL = (
    "WITH current AS (SELECT model_id FROM champion WHERE name = :name), "
    "p AS (INSERT INTO promotion (name, model_id, previous_model_id, decision, decided_by, date_id, evidence, "
    "job_id) SELECT :name, :model_id, (SELECT model_id FROM current), 'promoted', :decided_by, :date_id, "
    "CAST(:evidence AS jsonb), CAST(:job_id AS uuid) WHERE NOT :check_previous OR "
    "(SELECT model_id FROM current) IS NOT DISTINCT FROM :previous_model_id "
    f"RETURNING {PROMOTION_COLUMNS}), "
    "c AS (INSERT INTO champion (name, model_id, promotion_id) SELECT name, model_id, id FROM p "
    "ON CONFLICT (name) DO UPDATE SET model_id = EXCLUDED.model_id, promotion_id = EXCLUDED.promotion_id, "
    "updated_at = now() RETURNING name) "
    "SELECT p.* FROM p"
)

_KEPT_SQL = (
    "INSERT INTO promotion (name, model_id, previous_model_id, decision, decided_by, date_id, evidence, job_id) "
    "VALUES (:name, :model_id, (SELECT model_id FROM champion WHERE name = :name), 'kept', 'rule', :date_id, "
    f"CAST(:evidence AS jsonb), CAST(:job_id AS uuid)) RETURNING {PROMOTION_COLUMNS}"
)


def promote(
    api: DataApi,
    *,
    name: str,
    model_id: int,
    decided_by: str,
    evidence: dict[str, Any],
    previous_model_id: int | None = None,
    check_previous: bool = False,
    date_id: int | None = None,
    job_id: str | None = None,
) -> dict[str, Any] | None:
    """The promotion record, or None when `check_previous` and the champion is no longer `previous_model_id`."""
    rows = api.execute(
        _PROMOTE_SQL,
        {
            "name": name,
            "model_id": model_id,
            "decided_by": decided_by,
            "date_id": date_id,
            "evidence": evidence,
            "job_id": job_id,
            "check_previous": check_previous,
            "previous_model_id": previous_model_id,
        },
    ).records
    return rows[0] if rows else None


def record_kept(
    api: DataApi,
    *,
    name: str,
    model_id: int,
    evidence: dict[str, Any],
    date_id: int | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """A candidate the rule did not promote (the champion stays), with the evidence."""
    params = {"name": name, "model_id": model_id, "evidence": evidence, "date_id": date_id, "job_id": job_id}
    return api.execute(_KEPT_SQL, params).records[0]


def champion(api: DataApi, name: str) -> dict[str, Any] | None:
    rows = api.execute(
        f"SELECT {CHAMPION_COLUMNS} FROM champion AS c JOIN model AS m ON m.id = c.model_id WHERE c.name = :name",
        {"name": name},
    ).records
    return rows[0] if rows else None


def previous_champions(api: DataApi, name: str, limit: int = 10) -> list[int]:
    """Model ids promoted under `name`, newest first (where a predictor falls back to when the champion's
    artifact is unusable)."""
    rows = api.execute(
        "SELECT model_id FROM promotion WHERE name = :name AND decision = 'promoted' ORDER BY id DESC "
        "LIMIT :limit",
        {"name": name, "limit": limit},
    ).records
    seen: list[int] = []
    for row in rows:
        if int(row["model_id"]) not in seen:
            seen.append(int(row["model_id"]))
    return seen


def list_champions(api: DataApi, page: PageRequest) -> PageResult:
    return list_page(
        api,
        select=CHAMPION_COLUMNS,
        table="champion AS c JOIN model AS m ON m.id = c.model_id",
        where=[],
        params={},
        order_by="c.name",
        request=page,
    )


def list_promotions(
    api: DataApi, page: PageRequest, *, name: str | None, model_id: int | None, decision: str | None
) -> PageResult:
    clauses, params = where_clauses(
        {
            "name": ("name = :name", name),
            "model_id": ("model_id = :model_id", model_id),
            "decision": ("decision = :decision", decision),
        }
    )
    return list_page(
        api,
        select=PROMOTION_COLUMNS,
        table="promotion",
        where=clauses,
        params=params,
        order_by="id DESC",
        request=page,
    )
