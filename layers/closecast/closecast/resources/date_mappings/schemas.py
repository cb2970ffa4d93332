"""Models of /date_mappings/."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from closecast.api.types import DateId


class DateMapping(BaseModel):
    date_id: DateId
    trading_date: dt.date


class DateMappingsCreate(BaseModel):
    data: list[DateMapping] = Field(min_length=1, max_length=5000)
