"""Models of /model-inferences/."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from closecast.api.types import Count, DateId, RecordId, S3Uri


class ModelInferenceCreate(BaseModel):
    model_id: RecordId
    date_id: DateId
    predictions_uri: S3Uri
    n_rows: Count
    mae: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ModelInferenceRecord(ModelInferenceCreate):
    id: int
    created_at: dt.datetime
