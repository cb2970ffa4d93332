"""The envelope's column-wise reader of ROW_RULES (`snapshots_of_rows`) against the row model it stands in for:
it vouches only for rows Snapshot.model_validate accepts, and gives exactly the Snapshots the model gives."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from pydantic import ValidationError

from closecast.market.schema import MAX_DATE_ID, MAX_STOCK_ID, Snapshot, snapshots_of_rows

pytestmark = pytest.mark.unit


def _row(stock_id: int = 3, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "stock_id": stock_id, "date_id": 10, "seconds_in_bucket": 20, "imbalance_size": 1e6,
        "imbalance_buy_sell_flag": 1, "reference_price": 1.0, "matched_size": 1e7, "far_price": None,
        "near_price": None, "bid_price": 0.999, "bid_size": 2e4, "ask_price": 1.001, "ask_size": 3e4,
        "wap": 1.0, "target": -1.5, "time_id": 10 * 55 + 2, "row_id": f"10_20_{stock_id}",
    }  # fmt: skip
    row.update(changes)
    return row


def _envelope(**changes: Any) -> list[dict[str, Any]]:
    """Three good rows, the middle one changed."""
    middle = _row(2)
    middle.update(changes)
    return [_row(1), middle, _row(3)]


def _by_the_model(rows: list[Any]) -> list[Snapshot] | None:
    try:
        return [Snapshot.model_validate(row) for row in rows]
    except ValidationError:
        return None


def _same(fast: list[Snapshot], model: list[Snapshot]) -> None:
    assert fast == model
    for a, b in zip(fast, model, strict=True):
        assert list(a.__dict__) == list(b.__dict__)  # the fields in the model's order
        assert [type(v) for v in a.__dict__.values()] == [type(v) for v in b.__dict__.values()]
        assert a.model_fields_set == b.model_fields_set
        assert a.model_dump_json() == b.model_dump_json() and repr(a) == repr(b)


def _check(rows: list[Any]) -> bool:
    """Compare the two readers on `rows`; True when the column reader vouched for them."""
    model = _by_the_model(copy.deepcopy(rows))
    fast = snapshots_of_rows(rows)
    if fast is None:
        return False
    assert model is not None, "the column reader accepted rows the model refuses"
    _same(fast, model)
    return True


VALUES: list[Any] = [
    None, "", "5", "abc", True, False, 0, 1, -1, 2, 1.5, 10.0, -0.0, 0.0, 1e-300, 25, 540, 550, 1e308,
    MAX_DATE_ID, MAX_DATE_ID + 1, MAX_STOCK_ID, MAX_STOCK_ID + 1, 2**31, 2**53 + 1, 10**400,
    math.nan, math.inf, -math.inf, [], {}, "10_20_2", "prod", "demo_27", "bad type!", "x" * 33, "prod\n",
]  # fmt: skip


@pytest.mark.parametrize("column", [*_row(), "train_type"])
def test_no_value_in_any_column_is_accepted_that_the_model_refuses(column: str) -> None:
    """Given an envelope whose middle row has each of many awkward values in one column, when the column reader
    reads it, then it either declines (the model decides) or gives what the model gives, value for value."""
    for value in VALUES:
        _check(_envelope(**{column: value}))


@pytest.mark.parametrize(
    "rows",
    [
        [_row(1), {k: v for k, v in _row(2).items() if k != "wap"}, _row(3)],  # a required field missing
        [_row(1), {**_row(2), "extra": 1}, _row(3)],  # an unknown field
        [_row(1), dict(reversed(list(_row(2).items()))), _row(3)],  # another key order
        [_row(1), [1, 2, 3], _row(3)],  # not an object
        [_row(1), _row(2, imbalance_size=""), _row(3)],  # "" for null: the model normalises it
        [_row(1), _row(2, bid_size=math.nan), _row(3)],  # NaN for null: likewise
        [],
    ],
    ids=["missing", "extra", "order", "not-object", "empty-string", "nan", "empty"],
)
def test_rows_that_are_not_plainly_valid_are_left_to_the_model_untouched(rows: list[Any]) -> None:
    """Given rows the column reader cannot vouch for, when it reads them, then it declines and leaves them as
    they came (the caller validates them one by one)."""
    before = copy.deepcopy(rows)
    assert snapshots_of_rows(rows) is None
    assert rows == before


def test_plain_rows_are_accepted_and_are_the_models_snapshots() -> None:
    """Given an envelope of good rows, when the column reader reads it, then it accepts it and gives the
    Snapshots the model gives."""
    assert _check(_envelope())


def test_integers_in_number_columns_become_floats_as_in_the_model() -> None:
    """Given integers in size and price columns, then they are accepted and stored as floats, as the model
    does."""
    rows = _envelope(bid_size=20_000, wap=1, target=0)
    assert _check(rows)
    assert type(rows[1]["bid_size"]) is float


def test_keys_without_time_id_row_id_or_target_get_them_derived() -> None:
    """Given rows with the keys and features only, then time_id and row_id are derived, target and train_type
    null, and only the given fields count as set (as in the model)."""
    rows = [{k: v for k, v in _row(s).items() if k not in ("time_id", "row_id", "target")} for s in (1, 2)]
    assert _check(rows)


def test_rows_in_another_key_order_are_accepted_and_rebuilt_in_the_models_order() -> None:
    """Given rows that all list their keys in another order, then they are accepted, fields in model order."""
    rows = [dict(reversed(list(_row(s, train_type="prod").items()))) for s in (1, 2, 3)]
    assert _check(rows)


def test_a_wrong_time_id_or_row_id_is_left_to_the_model() -> None:
    """Given a row whose time_id or row_id does not match its keys, then the column reader declines."""
    assert snapshots_of_rows(_envelope(time_id=0)) is None
    assert snapshots_of_rows(_envelope(row_id="10_20_9")) is None
