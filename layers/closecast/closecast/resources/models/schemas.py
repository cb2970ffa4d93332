"""Models of /models/. The original project's names (`model_name`, `model_artifact_path` as a key in the stack's
bucket, `date_id`) are accepted beside closecast's and returned on every record."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from closecast.api.types import BucketKey, DateId, JsonObject, ModelName, RecordId, S3Uri, StrictBody, Text
from closecast.market.schema import INT4_MAX

# The feature set of a model registered with the original's body, which names none.
ORIGINAL_FEATURE_SET = "original"


class ModelCreate(StrictBody):
    name: ModelName | None = None
    model_name: ModelName | None = Field(default=None, description="the original's name of `name`")
    version: int | None = Field(default=None, ge=1, le=INT4_MAX)
    artifact_uri: S3Uri | None = None
    model_artifact_path: BucketKey | None = Field(
        default=None, description="a key in the stack's bucket (the original's form of `artifact_uri`)"
    )
    metadata_uri: S3Uri | None = None
    parent_id: RecordId | None = None
    last_trained_date_id: DateId | None = None
    date_id: DateId | None = Field(default=None, description="the original's name of `last_trained_date_id`")
    feature_set: Text | None = Field(
        default=None, min_length=1, max_length=100, description=f'default "{ORIGINAL_FEATURE_SET}"'
    )
    params: JsonObject = {}
    metrics: JsonObject = {}


class ModelRecord(BaseModel):
    id: int
    name: str
    version: int
    artifact_uri: str
    metadata_uri: str | None
    parent_id: int | None
    last_trained_date_id: int | None
    feature_set: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: dt.datetime
    model_id: int
    model_name: str
    model_artifact_path: str = Field(description="the artifact's key in the stack's bucket (else its URI)")
    date_id: int | None
    # filled by training jobs (functions/train)
    job_id: str | None = None
    days_trained: list[int] = Field(default=[], description="date_ids trained on")
    day_versions: dict[str, int] = Field(default={}, description="day store version of each day trained on")
    training: dict[str, Any] = Field(
        default={}, description="refit or daily update, and the update's evidence"
    )
