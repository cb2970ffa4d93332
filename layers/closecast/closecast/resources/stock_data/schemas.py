"""Models of /stock_data/. A row is the stream's `Snapshot`: one set of rules for both writers."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from closecast.api.types import StrictBody
from closecast.market.schema import Snapshot

__all__ = ["Snapshot", "StockDataCreate", "StockDataCreated", "duplicate_rows"]


class StockDataCreate(StrictBody):
    """The stream's envelope: `commit: false` validates the rows and stores nothing."""

    data: list[Snapshot] = Field(min_length=1, max_length=5000)
    commit: bool = True


class StockDataCreated(BaseModel):
    rows: int = Field(description="rows validated (and stored, when committed)")
    committed: bool


def duplicate_rows(rows: Sequence[Snapshot]) -> list[tuple[int, int]]:
    """(index, index of the first row with the same key) of every row whose natural key came before."""
    first: dict[tuple[int, int, int], int] = {}
    repeats: list[tuple[int, int]] = []
    for index, row in enumerate(rows):
        key = (row.date_id, row.seconds_in_bucket, row.stock_id)
        if key in first:
            repeats.append((index, first[key]))
        else:
            first[key] = index
    return repeats
