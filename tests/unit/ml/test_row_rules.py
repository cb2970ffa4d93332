"""One table of row rules: the stream's Snapshot model and the Kaggle loader read the same bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from closecast.market.schema import MAX_DATE_ID, MAX_STOCK_ID, ROW_RULES, Snapshot
from closecast_ml.kaggle import validate_frame

pytestmark = pytest.mark.unit


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "stock_id": 3, "date_id": 10, "seconds_in_bucket": 20, "imbalance_size": 1e6,
        "imbalance_buy_sell_flag": 1, "reference_price": 1.0, "matched_size": 1e7, "far_price": None,
        "near_price": None, "bid_price": 0.999, "bid_size": 2e4, "ask_price": 1.001, "ask_size": 3e4,
        "wap": 1.0, "target": 1.5,
    }  # fmt: skip
    row.update(changes)
    return row


def _frame(row: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame([row]).astype({"far_price": "float64", "near_price": "float64"})
    frame["time_id"] = int(row["date_id"]) * 55 + int(row["seconds_in_bucket"]) // 10  # type: ignore[call-overload]
    frame["row_id"] = f"{row['date_id']}_{row['seconds_in_bucket']}_{row['stock_id']}"
    return frame


def _stream_accepts(row: dict[str, object]) -> bool:
    try:
        Snapshot.model_validate(row)
    except ValidationError:
        return False
    return True


def _loader_accepts(row: dict[str, object]) -> bool:
    return validate_frame(_frame(row)).ok


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({}, True),
        ({"date_id": MAX_DATE_ID}, True),
        ({"date_id": MAX_DATE_ID + 1}, False),
        ({"stock_id": MAX_STOCK_ID}, True),
        ({"stock_id": MAX_STOCK_ID + 1}, False),
        ({"seconds_in_bucket": 540}, True),
        ({"seconds_in_bucket": 550}, False),
        ({"seconds_in_bucket": 25}, False),
        ({"imbalance_buy_sell_flag": 2}, False),
        ({"bid_size": -1.0}, False),
        ({"bid_size": 0.0}, True),
        ({"wap": 0.0}, False),
        ({"far_price": float("inf")}, False),
        ({"target": float("inf")}, False),
    ],
    ids=lambda v: str(v) if not isinstance(v, bool) else ("ok" if v else "refused"),
)
def test_stream_and_loader_agree_on_every_rule(changes: dict[str, object], accepted: bool) -> None:
    """Given a row at or past a bound of ROW_RULES, then Snapshot and the Kaggle loader both accept or both
    refuse it (today's largest date_id is the same for both)."""
    row = _row(**changes)
    assert _stream_accepts(row) is accepted
    assert _loader_accepts(row) is accepted


def test_the_rules_table_covers_every_validated_column() -> None:
    """Given ROW_RULES, then it has a rule for the keys, the flag, every size and price, and the target."""
    assert set(ROW_RULES) == {
        "stock_id", "date_id", "seconds_in_bucket", "imbalance_buy_sell_flag", "imbalance_size", "matched_size",
        "bid_size", "ask_size", "reference_price", "far_price", "near_price", "bid_price", "ask_price", "wap",
        "target",
    }  # fmt: skip
    assert np.iinfo(np.int16).max >= MAX_DATE_ID
