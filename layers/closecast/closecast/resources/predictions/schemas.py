"""Models of /predictions/."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from closecast.api.types import DateId, RecordId, StockId


class PredictionRecord(BaseModel):
    """One live prediction of one row by one model. `partial`: some earlier snapshot of the day had no row for
    this stock when it was made (late or missing); `missing_before` counts those snapshots."""

    date_id: DateId
    seconds_in_bucket: int
    stock_id: StockId
    model_id: RecordId
    row_id: str
    value: float
    partial: bool
    missing_before: int
    created_at: dt.datetime
    updated_at: dt.datetime
