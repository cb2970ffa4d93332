"""All SQL on `model_inference`."""

from __future__ import annotations

from typing import Any

from closecast.db.data_api import DataApi
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses

COLUMNS = (
    "id, model_id, date_id, predictions_uri, n_rows, mae, created_at, zero_mae, n_targets, centered, "
    "job_id::text AS job_id"
)


def list_model_inferences(
    api: DataApi, page: PageRequest, *, model_id: int | None = None, date_id: int | None = None
) -> PageResult:
    clauses, params = where_clauses(
        {"model_id": ("model_id = :model_id", model_id), "date_id": ("date_id = :date_id", date_id)}
    )
    return list_page(
        api,
        select=COLUMNS,
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
        f"n_rows = EXCLUDED.n_rows, mae = EXCLUDED.mae RETURNING {COLUMNS}"
    )
    return api.execute(sql, record).records[0]


def register_inference(api: DataApi, record: dict[str, Any]) -> dict[str, Any]:
    """The inference function's record of a day's predictions (file already in S3), with the MAE of the model
    and of predicting zero when targets are known. Replaces an earlier run of the same model on the same day."""
    sql = (
        "INSERT INTO model_inference (model_id, date_id, predictions_uri, n_rows, mae, zero_mae, n_targets, "
        "centered, job_id) VALUES (:model_id, :date_id, :predictions_uri, :n_rows, :mae, :zero_mae, :n_targets, "
        ":centered, CAST(:job_id AS uuid)) ON CONFLICT (model_id, date_id) DO UPDATE SET "
        "predictions_uri = EXCLUDED.predictions_uri, n_rows = EXCLUDED.n_rows, mae = EXCLUDED.mae, "
        "zero_mae = EXCLUDED.zero_mae, n_targets = EXCLUDED.n_targets, centered = EXCLUDED.centered, "
        "job_id = EXCLUDED.job_id, created_at = now() "
        f"RETURNING {COLUMNS}"
    )
    return api.execute(sql, record).records[0]


def get_inference(api: DataApi, inference_id: int) -> dict[str, Any] | None:
    rows = api.execute(f"SELECT {COLUMNS} FROM model_inference WHERE id = :id", {"id": inference_id}).records
    return rows[0] if rows else None
