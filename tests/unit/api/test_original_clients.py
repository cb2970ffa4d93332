"""The replaced project's clients against closecast: its stream producer's records land every row, and
`POST /stock_data/` and the stream never disagree about a row."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from closecast import ingest
from tests.unit.api.conftest import Answered, FakeDataApi, event, snapshot

pytestmark = pytest.mark.unit

Call = Callable[[str, dict[str, Any]], Answered]


def _producer_record(rows: list[dict[str, Any]]) -> ingest.StreamRecord:
    """As the original producer sends: pandas records with bare NaN, `train_type` on each, partition key "1"."""
    text = json.dumps({"data": rows, "commit": True}, allow_nan=True)
    return ingest.StreamRecord(sequence_number="1", partition_key="1", data=text.encode())


def _rows(n: int, train_type: str = "demo_27") -> list[dict[str, Any]]:
    return [
        snapshot(
            stock_id=i,
            far_price=float("nan"),
            near_price=float("nan"),
            target=-3.03,
            time_id=478 * 55,
            row_id=f"478_0_{i}",
            train_type=train_type,
        )
        for i in range(n)
    ]


def test_the_original_producers_record_lands_all_50_rows_with_their_tag() -> None:
    parsed, rejections = ingest.parse(_producer_record(_rows(50)))
    assert rejections == []
    assert len(parsed.rows) == 50
    assert {row.train_type for row in parsed.rows} == {"demo_27"}
    assert parsed.rows[0].far_price is None


CANDIDATES = [
    snapshot(),
    snapshot(train_type="prod"),
    snapshot(train_type=""),
    snapshot(train_type="x" * 33),
    snapshot(stock_id=True),
    snapshot(seconds_in_bucket=15),
    snapshot(wap=-1.0),
    {k: v for k, v in snapshot().items() if k != "bid_size"},
    snapshot(colour="red"),
    snapshot(row_id="1_0_0"),
]


@pytest.mark.parametrize("row", CANDIDATES, ids=range(len(CANDIDATES)))
def test_post_and_stream_agree_about_every_row(
    call: Call, fake_api: FakeDataApi, row: dict[str, Any]
) -> None:
    """Given a row, then the stream accepts it exactly when POST /stock_data/ with commit false does."""
    record = ingest.StreamRecord("1", "1", json.dumps({"data": [row], "commit": False}).encode())
    _, rejections = ingest.parse(record)
    answered = call("stock_data", event("POST", "/stock_data/", body={"data": [row], "commit": False}))
    assert answered.status in (200, 422)
    assert (answered.status == 200) == (rejections == [])
