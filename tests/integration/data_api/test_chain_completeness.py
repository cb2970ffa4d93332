"""The ingest's completeness test (`complete_days`) against PostgreSQL: the days it finds complete are the
ones the counting test (`completeness`, what the schedule reports) finds complete, whatever state a day is in."""

from __future__ import annotations

import pytest

from closecast.chain import complete_days, completeness
from closecast.db.data_api import DataApi
from closecast.market.schema import Snapshot
from closecast.resources.stock_data import sql

pytestmark = pytest.mark.integration

FIRST = 9_100  # date_ids of this test alone


def _rows(date_id: int, n: int, target: float | None) -> list[Snapshot]:
    return [
        Snapshot.model_validate(
            {
                "stock_id": stock,
                "date_id": date_id,
                "seconds_in_bucket": 0,
                "imbalance_size": 1.0,
                "imbalance_buy_sell_flag": 1,
                "reference_price": 1.0,
                "matched_size": 1.0,
                "far_price": None,
                "near_price": None,
                "bid_price": 1.0,
                "bid_size": 1.0,
                "ask_price": 1.0,
                "ask_size": 1.0,
                "wap": 1.0,
                "target": target,
            }
        )
        for stock in range(n)
    ]


def _targets(date_id: int, stocks: range) -> list[sql.RevealedTarget]:
    return [sql.RevealedTarget(date_id, 0, stock, 0.5) for stock in stocks]


def test_the_days_found_complete_are_the_ones_the_counts_call_complete(api: DataApi) -> None:
    """Given days in every state (no rows; targets only; rows waiting for targets; rows with their own
    targets; rows with revealed targets; some rows with, some without; more targets than rows; a target for
    the one row without its own), when the ingest's test and the counting test judge them, then they find the
    same days complete: those whose every row has a target and no target lacks its row."""
    days = {
        "no rows": FIRST,
        "targets only": FIRST + 1,
        "waiting": FIRST + 2,
        "own targets": FIRST + 3,
        "revealed": FIRST + 4,
        "half": FIRST + 5,
        "missing rows": FIRST + 6,
        "last one revealed": FIRST + 7,
    }
    sql.write(api, [], _targets(days["targets only"], range(3)))
    sql.write(api, _rows(days["waiting"], 5, None))
    sql.write(api, _rows(days["own targets"], 5, 0.1))
    sql.write(api, _rows(days["revealed"], 5, None), _targets(days["revealed"], range(5)))
    sql.write(api, _rows(days["half"], 5, None), _targets(days["half"], range(2)))
    sql.write(api, _rows(days["missing rows"], 4, 0.1), _targets(days["missing rows"], range(5)))
    sql.write(api, _rows(days["last one revealed"], 4, 0.1) + _rows(days["last one revealed"], 5, None)[4:])
    sql.write(api, [], _targets(days["last one revealed"], range(4, 5)))

    counted = [d for d, day in completeness(api, days.values()).items() if day.complete]

    assert complete_days(api, days.values()) == sorted(counted)
    assert sorted(counted) == [days["own targets"], days["revealed"], days["last one revealed"]]
    assert complete_days(api, []) == []
