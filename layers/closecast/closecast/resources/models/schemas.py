"""Models of /models/."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from closecast.api.types import DateId, JsonObject, RecordId, S3Uri, Text
from closecast.market.schema import INT4_MAX


class ModelCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    version: int | None = Field(default=None, ge=1, le=INT4_MAX)
    artifact_uri: S3Uri
    metadata_uri: S3Uri | None = None
    parent_id: RecordId | None = None
    last_trained_date_id: DateId | None = None
    feature_set: Text = Field(min_length=1, max_length=100)
    params: JsonObject = {}
    metrics: JsonObject = {}


class ModelRecord(ModelCreate):
    id: int
    version: int
    created_at: dt.datetime
