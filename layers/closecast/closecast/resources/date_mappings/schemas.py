"""Models of /date_mappings/. `date` is the original project's name of `trading_date`; both are accepted and
both are returned."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, model_validator

from closecast.api.types import DateId, IsoDate, StrictBody


class DateMappingIn(StrictBody):
    date_id: DateId
    trading_date: IsoDate | None = None
    date: IsoDate | None = Field(default=None, description="the trading date (the original's name)")

    @model_validator(mode="after")
    def _one_date(self) -> DateMappingIn:
        if self.trading_date is None and self.date is None:
            raise ValueError("give the trading date as `date` or `trading_date`")
        if self.trading_date is not None and self.date is not None and self.trading_date != self.date:
            raise ValueError("`date` and `trading_date` differ")
        return self

    @property
    def day(self) -> dt.date:
        day = self.trading_date or self.date
        assert day is not None  # the validator guarantees one
        return day


class DateMappingsCreate(StrictBody):
    data: list[DateMappingIn] = Field(min_length=1, max_length=5000)


class DateMapping(BaseModel):
    date_id: int
    trading_date: dt.date
    date: dt.date


class DateMappingsCreated(BaseModel):
    rows: int
