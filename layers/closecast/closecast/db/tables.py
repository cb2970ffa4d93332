"""All SQL on `date_mapping`, `model` and `model_inference`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from closecast.db.data_api import DataApi
from closecast.db.errors import UniqueViolation
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.errors import Conflict

# ----------------------------------------------------------------------------- date_mapping
DATE_MAPPING_COLUMNS = "date_id, trading_date"


def list_date_mappings(
    api: DataApi,
    page: PageRequest,
    *,
    date_id: int | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> PageResult:
    clauses, params = where_clauses(
        {
            "date_id": ("date_id = :date_id", date_id),
            "date_from": ("trading_date >= :date_from", date_from),
            "date_to": ("trading_date <= :date_to", date_to),
        }
    )
    return list_page(
        api,
        select=DATE_MAPPING_COLUMNS,
        table="date_mapping",
        where=clauses,
        params=params,
        order_by="date_id",
        request=page,
    )


def upsert_date_mappings(api: DataApi, mappings: Sequence[tuple[int, dt.date]]) -> int:
    """Insert or correct mappings; a trading date already used by another date_id is a conflict."""
    sql = (
        "INSERT INTO date_mapping (date_id, trading_date) VALUES (:date_id, :trading_date) "
        "ON CONFLICT (date_id) DO UPDATE SET trading_date = EXCLUDED.trading_date"
    )
    try:
        return api.batch_execute(sql, [{"date_id": d, "trading_date": t} for d, t in mappings])
    except UniqueViolation as exc:
        raise Conflict(f"a trading_date is already mapped to another date_id: {exc}") from exc


# ----------------------------------------------------------------------------- model
MODEL_COLUMNS = (
    "id, name, version, artifact_uri, metadata_uri, parent_id, last_trained_date_id, feature_set, "
    "params, metrics, created_at"
)


def list_models(api: DataApi, page: PageRequest, *, name: str | None = None) -> PageResult:
    clauses, params = where_clauses({"name": ("name = :name", name)})
    return list_page(
        api, select=MODEL_COLUMNS, table="model", where=clauses, params=params, order_by="id", request=page
    )


def insert_model(api: DataApi, record: dict[str, Any]) -> dict[str, Any]:
    sql = (
        "INSERT INTO model (name, version, artifact_uri, metadata_uri, parent_id, last_trained_date_id, "
        "feature_set, params, metrics) VALUES (:name, COALESCE(:version, "
        "(SELECT COALESCE(max(version), 0) + 1 FROM model WHERE name = :name)), :artifact_uri, :metadata_uri, "
        f":parent_id, :last_trained_date_id, :feature_set, :params, :metrics) RETURNING {MODEL_COLUMNS}"
    )
    try:
        return api.execute(sql, record).records[0]
    except UniqueViolation as exc:
        raise Conflict(f"model {record['name']!r} version {record.get('version')} exists") from exc


# ----------------------------------------------------------------------------- model_inference
INFERENCE_COLUMNS = "id, model_id, date_id, predictions_uri, n_rows, mae, created_at"


def list_model_inferences(
    api: DataApi, page: PageRequest, *, model_id: int | None = None, date_id: int | None = None
) -> PageResult:
    clauses, params = where_clauses(
        {"model_id": ("model_id = :model_id", model_id), "date_id": ("date_id = :date_id", date_id)}
    )
    return list_page(
        api,
        select=INFERENCE_COLUMNS,
        table="model_inference",
        where=clauses,
        params=params,
        order_by="id",
        request=page,
    )


def insert_model_inference(api: DataApi, record: dict[str, Any]) -> dict[str, Any]:
    """Idempotent on (model_id, date_id): posting the same day again replaces its record."""
    sql = (
        "INSERT INTO model_inference (model_id, date_id, predictions_uri, n_rows, mae) "
        "VALUES (:model_id, :date_id, :predictions_uri, :n_rows, :mae) "
        "ON CONFLICT (model_id, date_id) DO UPDATE SET predictions_uri = EXCLUDED.predictions_uri, "
        f"n_rows = EXCLUDED.n_rows, mae = EXCLUDED.mae RETURNING {INFERENCE_COLUMNS}"
    )
    return api.execute(sql, record).records[0]


def model_exists(api: DataApi, model_id: int) -> bool:
    return bool(api.execute("SELECT 1 AS one FROM model WHERE id = :id", {"id": model_id}).records)
