"""All SQL on `model`."""

from __future__ import annotations

from typing import Any

from closecast.db.data_api import DataApi
from closecast.db.errors import UniqueViolation
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.errors import Conflict

COLUMNS = (
    "id, name, version, artifact_uri, metadata_uri, parent_id, last_trained_date_id, feature_set, "
    "params, metrics, created_at"
)


def list_models(api: DataApi, page: PageRequest, *, name: str | None = None) -> PageResult:
    clauses, params = where_clauses({"name": ("name = :name", name)})
    return list_page(
        api, select=COLUMNS, table="model", where=clauses, params=params, order_by="id", request=page
    )


def insert_model(api: DataApi, record: dict[str, Any]) -> dict[str, Any]:
    sql = (
        "INSERT INTO model (name, version, artifact_uri, metadata_uri, parent_id, last_trained_date_id, "
        "feature_set, params, metrics) VALUES (:name, COALESCE(:version, "
        "(SELECT COALESCE(max(version), 0) + 1 FROM model WHERE name = :name)), :artifact_uri, :metadata_uri, "
        f":parent_id, :last_trained_date_id, :feature_set, :params, :metrics) RETURNING {COLUMNS}"
    )
    try:
        return api.execute(sql, record).records[0]
    except UniqueViolation as exc:
        raise Conflict(f"model {record['name']!r} version {record.get('version')} exists") from exc


def model_exists(api: DataApi, model_id: int) -> bool:
    return bool(api.execute("SELECT 1 AS one FROM model WHERE id = :id", {"id": model_id}).records)


# ----------------------------------------------------------------------------- the registry (train function)
REGISTRY_COLUMNS = f"{COLUMNS}, job_id::text AS job_id, days_trained, day_versions, training"


def get_model(api: DataApi, model_id: int) -> dict[str, Any] | None:
    rows = api.execute(f"SELECT {REGISTRY_COLUMNS} FROM model WHERE id = :id", {"id": model_id}).records
    return rows[0] if rows else None


def next_version(api: DataApi, name: str) -> int:
    sql = "SELECT COALESCE(max(version), 0) + 1 AS version FROM model WHERE name = :name"
    return int(api.execute(sql, {"name": name}).records[0]["version"])


def register_model(api: DataApi, record: dict[str, Any]) -> dict[str, Any] | None:
    """Register a trained model whose files are already in S3. None if (name, version) was taken meanwhile
    (the caller writes its files under the next version and tries again)."""
    sql = (
        "INSERT INTO model (name, version, artifact_uri, metadata_uri, parent_id, last_trained_date_id, "
        "feature_set, params, metrics, job_id, days_trained, day_versions, training) VALUES (:name, :version, "
        ":artifact_uri, :metadata_uri, :parent_id, :last_trained_date_id, :feature_set, :params, :metrics, "
        "CAST(:job_id AS uuid), :days_trained, :day_versions, :training) "
        f"ON CONFLICT (name, version) DO NOTHING RETURNING {REGISTRY_COLUMNS}"
    )
    rows = api.execute(sql, record).records
    return rows[0] if rows else None
