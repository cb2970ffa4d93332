"""The auction snapshot: one row per (date_id, seconds_in_bucket, stock_id), in the Kaggle schema."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SNAPSHOTS_PER_DAY = 55
SECONDS_STEP = 10
LAST_SECOND = 540
N_STOCKS = 200

# Kaggle's column order (train.csv); test.csv has the same columns less `target`.
KAGGLE_COLUMNS: tuple[str, ...] = (
    "stock_id",
    "date_id",
    "seconds_in_bucket",
    "imbalance_size",
    "imbalance_buy_sell_flag",
    "reference_price",
    "matched_size",
    "far_price",
    "near_price",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "wap",
    "target",
    "time_id",
    "row_id",
)
PRICE_COLUMNS: tuple[str, ...] = (
    "reference_price",
    "far_price",
    "near_price",
    "bid_price",
    "ask_price",
    "wap",
)
SIZE_COLUMNS: tuple[str, ...] = ("imbalance_size", "matched_size", "bid_size", "ask_size")


INT4_MAX = 2**31 - 1  # the database's integer columns
# the largest date_id whose time_id (date_id*55 + 54) still fits an integer column
MAX_DATE_ID = (INT4_MAX - (SNAPSHOTS_PER_DAY - 1)) // SNAPSHOTS_PER_DAY
MAX_STOCK_ID = 10_000


def time_id_of(date_id: int, seconds_in_bucket: int) -> int:
    return date_id * SNAPSHOTS_PER_DAY + seconds_in_bucket // SECONDS_STEP


def row_id_of(date_id: int, seconds_in_bucket: int, stock_id: int) -> str:
    return f"{date_id}_{seconds_in_bucket}_{stock_id}"


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Size = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# Provenance of a row as its producer tags it (the original project's `train_type`, e.g. "prod", "demo_27").
TRAIN_TYPE_PATTERN = r"^[A-Za-z0-9_.-]{1,32}$"
TrainType = Annotated[str, Field(min_length=1, max_length=32, pattern=TRAIN_TYPE_PATTERN)]
# The columns stored per row: the Kaggle columns and the provenance tag.
STORED_COLUMNS: tuple[str, ...] = (*KAGGLE_COLUMNS, "train_type")


_NULLABLE_NUMBERS = frozenset((*SIZE_COLUMNS, *PRICE_COLUMNS, "target"))


def _nan_to_none(value: Any) -> Any:
    if value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class Snapshot(BaseModel):
    """One validated auction snapshot, the one rule set of the stream and of `POST /stock_data/`. `time_id` and
    `row_id` are derived when absent and checked when given.

    Strict: a producer that sends `"5"` or `true` for an integer, or `10.0` for seconds, is refused rather than
    silently coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    stock_id: int = Field(ge=0, le=MAX_STOCK_ID)
    date_id: int = Field(ge=0, le=MAX_DATE_ID)
    seconds_in_bucket: int = Field(ge=0, le=LAST_SECOND)
    # Every feature column must be present (null allowed): a row of keys alone would otherwise overwrite the
    # stored features with nulls. `target` may be absent (test.csv rows have none; a known target is kept).
    imbalance_size: Size | None
    imbalance_buy_sell_flag: int
    reference_price: Price | None
    matched_size: Size | None
    far_price: Price | None
    near_price: Price | None
    bid_price: Price | None
    bid_size: Size | None
    ask_price: Price | None
    ask_size: Size | None
    wap: Price | None
    target: FiniteFloat | None = None
    time_id: int | None = Field(default=None, ge=0, le=INT4_MAX)
    row_id: str | None = Field(default=None, max_length=40)
    train_type: TrainType | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_null(cls, data: Any) -> Any:
        """ "" and NaN (the original producer's bare NaN tokens) in a number column mean null. One call per row
        rather than one per column: the stream validates tens of thousands of rows a second."""
        if isinstance(data, dict):
            for column in _NULLABLE_NUMBERS:
                value = data.get(column)
                if value == "" or (value.__class__ is float and value != value):
                    return {k: _nan_to_none(v) if k in _NULLABLE_NUMBERS else v for k, v in data.items()}
        return data

    @field_validator("imbalance_buy_sell_flag")
    @classmethod
    def _flag(cls, value: int) -> int:
        if value not in (-1, 0, 1):
            raise ValueError("must be one of -1, 0, 1")
        return value

    @field_validator("seconds_in_bucket")
    @classmethod
    def _step(cls, value: int) -> int:
        if value % SECONDS_STEP:
            raise ValueError(f"must be a multiple of {SECONDS_STEP}")
        return value

    @model_validator(mode="after")
    def _keys(self) -> Snapshot:
        expected_time = time_id_of(self.date_id, self.seconds_in_bucket)
        expected_row = row_id_of(self.date_id, self.seconds_in_bucket, self.stock_id)
        if self.time_id is None:
            object.__setattr__(self, "time_id", expected_time)
        elif self.time_id != expected_time:
            raise ValueError(f"time_id {self.time_id} != date_id*55 + seconds_in_bucket/10 = {expected_time}")
        if self.row_id is None:
            object.__setattr__(self, "row_id", expected_row)
        elif self.row_id != expected_row:
            raise ValueError(f"row_id {self.row_id!r} != {expected_row!r}")
        return self
