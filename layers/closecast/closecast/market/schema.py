"""The auction snapshot: one row per (date_id, seconds_in_bucket, stock_id), in the Kaggle schema."""

from __future__ import annotations

import math
from dataclasses import dataclass
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
INT16_MAX = 2**15 - 1
# The largest date_id: what a Kaggle frame's int16 `date_id` holds (about 130 years of trading days); its
# time_id (date_id*55 + 54) fits the database's integer columns with room to spare.
MAX_DATE_ID = INT16_MAX
MAX_STOCK_ID = 10_000


@dataclass(frozen=True)
class IntRule:
    """A required integer in low..high, a multiple of `step`, or one of `choices` when given."""

    low: int
    high: int
    step: int = 1
    choices: tuple[int, ...] | None = None

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        text = f"integer in {self.low}..{self.high}"
        return text + (f", a multiple of {self.step}" if self.step > 1 else "")


@dataclass(frozen=True)
class NumberRule:
    """A finite number or empty (null); `gt`/`ge`: its lower bound, when it has one."""

    gt: float | None = None
    ge: float | None = None
    nullable: bool = True

    def describe(self) -> str:
        bound = (
            f" > {self.gt:g}" if self.gt is not None else f" >= {self.ge:g}" if self.ge is not None else ""
        )
        return f"finite number{bound}" + (" or empty" if self.nullable else "")


Rule = IntRule | NumberRule

# THE row rules: one table, read by the stream's `Snapshot` model below and by the Kaggle loader's vectorised
# masks (closecast_ml.kaggle). time_id and row_id are derived from the keys (`time_id_of`, `row_id_of`).
SIZE_RULE = NumberRule(ge=0.0)
PRICE_RULE = NumberRule(gt=0.0)
TARGET_RULE = NumberRule()
ROW_RULES: dict[str, Rule] = {
    "stock_id": IntRule(0, MAX_STOCK_ID),
    "date_id": IntRule(0, MAX_DATE_ID),
    "seconds_in_bucket": IntRule(0, LAST_SECOND, step=SECONDS_STEP),
    "imbalance_buy_sell_flag": IntRule(-1, 1, choices=(-1, 0, 1)),
    **{column: SIZE_RULE for column in SIZE_COLUMNS},
    **{column: PRICE_RULE for column in PRICE_COLUMNS},
    "target": TARGET_RULE,
}


def _int_field(column: str) -> Any:
    rule = ROW_RULES[column]
    assert isinstance(rule, IntRule)
    return Field(ge=rule.low, le=rule.high)


def time_id_of(date_id: int, seconds_in_bucket: int) -> int:
    return date_id * SNAPSHOTS_PER_DAY + seconds_in_bucket // SECONDS_STEP


def row_id_of(date_id: int, seconds_in_bucket: int, stock_id: int) -> str:
    return f"{date_id}_{seconds_in_bucket}_{stock_id}"


FiniteFloat = Annotated[float, Field(gt=TARGET_RULE.gt, ge=TARGET_RULE.ge, allow_inf_nan=False)]
Size = Annotated[float, Field(gt=SIZE_RULE.gt, ge=SIZE_RULE.ge, allow_inf_nan=False)]
Price = Annotated[float, Field(gt=PRICE_RULE.gt, ge=PRICE_RULE.ge, allow_inf_nan=False)]


def _nan_to_none(value: Any) -> Any:
    if value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class Snapshot(BaseModel):
    """One validated auction snapshot. `time_id` and `row_id` are derived when absent and checked when given.

    Strict: a producer that sends `"5"` or `true` for an integer, or `10.0` for seconds, is refused rather than
    silently coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    stock_id: int = _int_field("stock_id")
    date_id: int = _int_field("date_id")
    seconds_in_bucket: int = _int_field("seconds_in_bucket")
    imbalance_size: Size | None = None
    imbalance_buy_sell_flag: int
    reference_price: Price | None = None
    matched_size: Size | None = None
    far_price: Price | None = None
    near_price: Price | None = None
    bid_price: Price | None = None
    bid_size: Size | None = None
    ask_price: Price | None = None
    ask_size: Size | None = None
    wap: Price | None = None
    target: FiniteFloat | None = None
    time_id: int | None = Field(default=None, ge=0, le=INT4_MAX)
    row_id: str | None = Field(default=None, max_length=40)

    @field_validator(*SIZE_COLUMNS, *PRICE_COLUMNS, "target", mode="before")
    @classmethod
    def _empty_is_null(cls, value: Any) -> Any:
        return _nan_to_none(value)

    @field_validator("imbalance_buy_sell_flag")
    @classmethod
    def _flag(cls, value: int) -> int:
        rule = ROW_RULES["imbalance_buy_sell_flag"]
        assert isinstance(rule, IntRule) and rule.choices is not None
        if value not in rule.choices:
            raise ValueError(f"must be {rule.describe()}")
        return value

    @field_validator("seconds_in_bucket")
    @classmethod
    def _step(cls, value: int) -> int:
        rule = ROW_RULES["seconds_in_bucket"]
        assert isinstance(rule, IntRule)
        if value % rule.step:
            raise ValueError(f"must be a multiple of {rule.step}")
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
