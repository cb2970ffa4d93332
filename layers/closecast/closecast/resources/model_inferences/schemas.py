"""Models of /model-inferences/. The original's `predictions` (a key in the stack's bucket) is accepted beside
`predictions_uri` and returned on every record."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from closecast.api.types import BucketKey, Count, DateId, RecordId, S3Uri, StrictBody


class ModelInferenceCreate(StrictBody):
    model_id: RecordId
    date_id: DateId
    predictions_uri: S3Uri | None = None
    predictions: BucketKey | None = Field(
        default=None, description="the predictions file's key in the stack's bucket (the original's form)"
    )
    n_rows: Count | None = None
    mae: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ModelInferenceRecord(BaseModel):
    id: int
    model_id: int
    date_id: int
    predictions_uri: str
    predictions: str = Field(description="the predictions file's key in the stack's bucket (else its URI)")
    n_rows: int | None
    mae: float | None
    created_at: dt.datetime
    # filled by inference jobs (functions/inference)
    zero_mae: float | None = Field(default=None, description="MAE of predicting zero on the same rows")
    n_targets: int | None = Field(default=None, description="rows whose target was known")
    centered: bool = False
    job_id: str | None = None


class PredictionRow(BaseModel):
    """One row of a day's predictions file."""

    row_id: str
    stock_id: int
    seconds_in_bucket: int
    prediction: float | None
    target: float | None = Field(description="the row's target when it was known at inference time")
