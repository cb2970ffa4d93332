"""The bulk write's encoding: what the statement's array parameters carry is exactly the rows given."""

from __future__ import annotations

import json
from typing import Any

import pytest

from closecast.resources.stock_data import sql

pytestmark = pytest.mark.unit


class Captured:
    """Stands in for the Data API: keeps the parameters of the one statement it is given."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def execute(self, statement: str, params: dict[str, Any], **_: Any) -> Any:
        self.params = params
        return type("Result", (), {"updated": 0})()


def written(text_values: list[str | None]) -> list[str | None]:
    api = Captured()
    rows = [
        {"stock_id": i, "date_id": 1, "seconds_in_bucket": 0, "row_id": v} for i, v in enumerate(text_values)
    ]
    sql.bulk_upsert_json(api, json.dumps(rows))  # type: ignore[arg-type]
    return [row["row_id"] for row in sql.rows_from_parameters(api.params)]


@pytest.mark.parametrize(
    "values",
    [
        ["478_0_0", "478_0_1", "a.b-c"],
        [None, None, None],
        ["a,b", "c"],
        ["plain", 'say "hi"', "back\\slash", None],
        ["NULL", "null", "xnullx"],
        ["", "x", "two words", "é"],
    ],
    ids=["plain", "all null", "comma", "quote backslash null", "the word null", "empty space non-ascii"],
)
def test_text_values_reach_the_statement_as_they_were_given(values: list[str | None]) -> None:
    """Given text values, plain (written bare, in one pass) or needing quotes (commas, quotes, backslashes, the
    word NULL in any case, empty, spaces), when written in bulk, then the array parameter reads back as exactly
    those values, a None as SQL NULL."""
    assert written(values) == values
