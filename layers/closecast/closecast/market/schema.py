"""The auction snapshot: one row per (date_id, seconds_in_bucket, stock_id), in the Kaggle schema."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence
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

    stock_id: int = _int_field("stock_id")
    date_id: int = _int_field("date_id")
    seconds_in_bucket: int = _int_field("seconds_in_bucket")
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
        if value not in _FLAG_CHOICES:
            raise ValueError(_FLAG_MESSAGE)
        return value

    @field_validator("seconds_in_bucket")
    @classmethod
    def _step(cls, value: int) -> int:
        if value % SECONDS_STEP:
            raise ValueError(_STEP_MESSAGE)
        return value

    @model_validator(mode="after")
    def _keys(self) -> Snapshot:
        # (the stream validates tens of thousands of rows a second: the formulas of time_id_of and row_id_of,
        # inline, and the derived values set straight into the frozen model's fields)
        fields = self.__dict__
        date_id, seconds = fields["date_id"], fields["seconds_in_bucket"]
        expected_time = date_id * SNAPSHOTS_PER_DAY + seconds // SECONDS_STEP
        time_id = fields["time_id"]
        if time_id is None:
            fields["time_id"] = expected_time
        elif time_id != expected_time:
            raise ValueError(f"time_id {time_id} != date_id*55 + seconds_in_bucket/10 = {expected_time}")
        expected_row = f"{date_id}_{seconds}_{fields['stock_id']}"
        row_id = fields["row_id"]
        if row_id is None:
            fields["row_id"] = expected_row
        elif row_id != expected_row:
            raise ValueError(f"row_id {row_id!r} != {expected_row!r}")
        return self


_FLAG_RULE = ROW_RULES["imbalance_buy_sell_flag"]
_STEP_RULE = ROW_RULES["seconds_in_bucket"]
assert isinstance(_FLAG_RULE, IntRule) and _FLAG_RULE.choices is not None
assert isinstance(_STEP_RULE, IntRule) and _STEP_RULE.step == SECONDS_STEP
_FLAG_CHOICES = frozenset(_FLAG_RULE.choices)
_FLAG_MESSAGE = f"must be {_FLAG_RULE.describe()}"
_STEP_MESSAGE = f"must be a multiple of {_STEP_RULE.step}"
assert time_id_of(7, 540) == 7 * SNAPSHOTS_PER_DAY + 540 // SECONDS_STEP and row_id_of(7, 540, 3) == "7_540_3"


# ---- the same rules read column by column, for a stream envelope of many rows
#
# Snapshot.model_validate costs several microseconds a row (the stream validates tens of thousands a second, in
# each of its two consumers). `snapshots_of_rows` reads ROW_RULES once per column of an envelope, with C-level
# min/max/set operations, and builds the Snapshots that model_validate would have built. It only ever vouches
# for rows that are plainly valid: anything else (a missing or unknown key, a value past its rule, "" or NaN
# for null, a bool, mixed key orders) makes it answer None, and the caller validates the rows one by one with
# the model, whose errors are the ones quarantined. So the model stays the schema and the source of every error
# message; this reader can only be stricter than it, never looser (tests/unit/test_schema_batch.py).

_FIELDS: tuple[str, ...] = tuple(Snapshot.model_fields)
_REQUIRED = frozenset(name for name, info in Snapshot.model_fields.items() if info.is_required())
_ALLOWED = frozenset(_FIELDS)
_NONE = type(None)
_NUMBER_TYPES = frozenset((float, int, _NONE))
_EXACT_INT = 2**53  # larger integers given for a float column: left to the model
_TRAIN_TYPE = re.compile(TRAIN_TYPE_PATTERN).fullmatch
_new = object.__new__
_set = object.__setattr__
assert set(ROW_RULES) <= _ALLOWED and set(ROW_RULES) - {"target"} <= _REQUIRED
assert set(_FIELDS) - set(ROW_RULES) == {"time_id", "row_id", "train_type"}


def _ints_follow(values: Sequence[Any], rule: IntRule) -> bool:
    """Every value a plain int (not bool, not float, not null) that `rule` allows."""
    if set(map(type, values)) != {int}:
        return False
    distinct = set(values)
    if rule.choices is not None:
        return distinct <= set(rule.choices)
    if not (rule.low <= min(distinct) and max(distinct) <= rule.high):
        return False
    return rule.step == 1 or not any(v % rule.step for v in distinct)


def _numbers(values: list[Any], rule: NumberRule) -> list[Any] | None:
    """The column as the model stores it (ints as floats), or None when some value is not plainly valid."""
    types = set(map(type, values))
    if not types <= _NUMBER_TYPES or (_NONE in types and not rule.nullable):
        return None
    if int in types:
        if max(abs(v) for v in values if v.__class__ is int) > _EXACT_INT:
            return None
        values = [float(v) if v.__class__ is int else v for v in values]
    present = [v for v in values if v is not None] if _NONE in types else values
    if not present:
        return values
    # a NaN (null to the model), an infinity, or finite values whose sum passes the float range: the model decides
    if not math.isfinite(sum(present)):
        return None
    low = min(present)
    if (rule.gt is not None and not low > rule.gt) or (rule.ge is not None and not low >= rule.ge):
        return None
    return values


def _derived_or_equal(given: list[Any], expected: list[Any], kind: type) -> list[Any] | None:
    """time_id / row_id: absent or null on every row (derived), or given on every row and equal."""
    types = set(map(type, given))
    if types == {_NONE}:
        return expected
    if types == {kind} and given == expected:
        return given
    return None


def snapshots_of_rows(rows: Sequence[dict[str, Any]]) -> list[Snapshot] | None:
    """The rows as the Snapshots `Snapshot.model_validate` makes of them, validated column by column with
    ROW_RULES; None unless every row is plainly valid (the caller then validates them one by one).

    The rows are handed over: when they are all valid, each dict becomes its Snapshot's fields (completed in
    place: ints of float columns as floats, derived time_id and row_id, absent fields as null), rather than
    being copied; when they are not, they are left as they came."""
    if not rows or set(map(type, rows)) != {dict}:
        return None
    shapes = set(map(tuple, rows))
    if len(shapes) != 1:
        return None
    (shape,) = shapes
    keys = frozenset(shape)
    if not _REQUIRED <= keys <= _ALLOWED:
        return None
    given = zip(*map(operator.itemgetter(*shape), rows), strict=True)  # (more than one key: a tuple a row)
    columns: dict[str, list[Any]] = dict(zip(shape, map(list, given), strict=True))
    changed = {name for name in _FIELDS if name not in keys}  # columns to write into the rows
    absent = [None] * len(rows)
    for name in changed:
        columns[name] = absent
    for name, rule in ROW_RULES.items():
        if isinstance(rule, IntRule):
            if not _ints_follow(columns[name], rule):
                return None
            continue
        checked = _numbers(columns[name], rule)
        if checked is None:
            return None
        if checked is not columns[name]:
            columns[name] = checked
            changed.add(name)
    dates, seconds, stocks = columns["date_id"], columns["seconds_in_bucket"], columns["stock_id"]
    time_ids = _derived_or_equal(
        columns["time_id"],
        [d * SNAPSHOTS_PER_DAY + s // SECONDS_STEP for d, s in zip(dates, seconds, strict=True)],
        int,
    )
    row_ids = _derived_or_equal(
        columns["row_id"], [f"{d}_{s}_{k}" for d, s, k in zip(dates, seconds, stocks, strict=True)], str
    )
    if time_ids is None or row_ids is None:
        return None
    for name, column in (("time_id", time_ids), ("row_id", row_ids)):
        if column is not columns[name]:  # derived
            columns[name] = column
            changed.add(name)
    train_types = columns["train_type"]
    if not set(map(type, train_types)) <= {str, _NONE} or not all(
        _TRAIN_TYPE(v) for v in set(train_types) if v is not None
    ):
        return None
    # every row is valid. A Snapshot's fields are in the model's order: when the rows' keys are the model's
    # first fields in order, the rows complete in place into exactly that; otherwise they are rebuilt.
    fields_set = set(keys)  # shared: the Snapshot is frozen, and nothing changes a frozen model's fields_set
    if shape == _FIELDS[: len(shape)]:
        for name in _FIELDS:  # (in field order: absent fields are appended in that order)
            if name in changed:
                for row, value in zip(rows, columns[name], strict=True):
                    row[name] = value
        values = rows
    else:
        values = [
            dict(zip(_FIELDS, v, strict=True)) for v in zip(*(columns[n] for n in _FIELDS), strict=True)
        ]
    return [_snapshot(v, fields_set) for v in values]


def _snapshot(values: dict[str, Any], fields_set: set[str]) -> Snapshot:
    """A Snapshot of already validated values (every field given, in the model's order), as model_validate
    leaves one: what `model_construct` does, without its per-field lookups."""
    snapshot: Snapshot = _new(Snapshot)
    _set(snapshot, "__dict__", values)
    _set(snapshot, "__pydantic_fields_set__", fields_set)
    _set(snapshot, "__pydantic_extra__", None)
    _set(snapshot, "__pydantic_private__", None)
    return snapshot
