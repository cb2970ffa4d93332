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
    zero_mae: float | None = Field(default=None, description="MAE of predicting zero on the same rows")
    n_targets: int | None = Field(default=None, description="rows whose target was known when scored")


class PredictionRow(BaseModel):
    """One row of a day's predictions file."""

    row_id: str
    stock_id: int
    seconds_in_bucket: int
    prediction: float | None
    target: float | None = Field(description="the row's target when it was known at inference time")
