"""Models of /stock_data/. A row is the stream's `Snapshot`: one set of rules for both writers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from closecast.market.schema import Snapshot

__all__ = ["Snapshot", "StockDataCreate", "StockDataCreated"]


class StockDataCreate(BaseModel):
    data: list[Snapshot] = Field(min_length=1, max_length=5000)


class StockDataCreated(BaseModel):
    rows: int
