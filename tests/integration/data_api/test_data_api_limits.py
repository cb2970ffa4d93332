"""The Data API size limits, as the local endpoint enforces them and the client copes with them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest

from closecast.db import errors
from closecast.db.data_api import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, DataApi

pytestmark = pytest.mark.integration

N_ROWS = 50_000
TOO_LARGE = "Database returned more than the allowed response size limit"


@pytest.fixture(scope="module")
def fifty_thousand_rows(session_api: DataApi) -> str:
    session_api.execute(
        "CREATE TABLE paging_rows (id bigint PRIMARY KEY, label text NOT NULL, value double precision)"
    )
    session_api.execute(
        "INSERT INTO paging_rows SELECT g, 'row number ' || g || ' of the paging test', g / 7.0 "
        "FROM generate_series(1, :n) AS g",
        {"n": N_ROWS},
    )
    return "paging_rows"


def test_large_read_is_paged_under_one_mib_and_returns_every_row_in_order(
    api: DataApi, wire: Any, fifty_thousand_rows: str
) -> None:
    # Given 50,000 rows (several MiB as Data API records)
    # When they are read with query()
    rows = api.query("SELECT id, label, value FROM paging_rows ORDER BY id")
    # Then all 50,000 come back in order, with their values
    assert [r["id"] for r in rows] == list(range(1, N_ROWS + 1))
    assert rows[-1] == {
        "id": N_ROWS,
        "label": f"row number {N_ROWS} of the paging test",
        "value": N_ROWS / 7.0,
    }
    # and every HTTP response was under 1 MiB, over a handful of pages
    sizes = [size for op, status, size in wire.responses if op == "ExecuteStatement"]
    assert all(status == 200 for _, status, _ in wire.responses)
    assert max(sizes) < MAX_RESPONSE_BYTES
    assert sum(sizes) > 4 * MAX_RESPONSE_BYTES
    assert 5 <= len(sizes) <= 40


def test_iter_query_streams_pages(api: DataApi, fifty_thousand_rows: str) -> None:
    # Given the same table / When iterated lazily / Then the first rows arrive without reading everything
    rows = api.iter_query(
        "SELECT id FROM paging_rows WHERE id <= :top ORDER BY id", {"top": 2500}, page_size=1000
    )
    assert next(rows) == {"id": 1}
    assert sum(1 for _ in rows) == 2499


def test_unpaged_oversized_result_is_refused_like_aurora(
    client: Any, target: Any, fifty_thousand_rows: str
) -> None:
    # Given a single ExecuteStatement over the whole table
    # When it runs / Then the endpoint refuses it with Aurora's exception and message
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(
            **target.request(sql="SELECT * FROM paging_rows", includeResultMetadata=True)
        )
    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("BadRequestException", TOO_LARGE)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_client_surfaces_response_too_large(api: DataApi, fifty_thousand_rows: str) -> None:
    # Given the client's execute() (no paging) / When the result is too large / Then ResponseTooLarge
    with pytest.raises(errors.ResponseTooLarge):
        api.execute("SELECT * FROM paging_rows")


def test_request_over_four_mib_is_refused(client: Any, target: Any) -> None:
    # Given a raw request carrying a 4.5 MiB string parameter
    big = "x" * (MAX_REQUEST_BYTES + MAX_REQUEST_BYTES // 8)
    # When sent / Then refused with HTTP 413 and nothing executed
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.execute_statement(
            **target.request(
                sql="SELECT length(:s) AS n", parameters=[{"name": "s", "value": {"stringValue": big}}]
            )
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert caught.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_request_just_under_four_mib_is_accepted(client: Any, target: Any) -> None:
    # Given a request just under the limit / When sent / Then it runs
    big = "y" * (MAX_REQUEST_BYTES - 2048)
    response = client.execute_statement(
        **target.request(
            sql="SELECT length(:s) AS n", parameters=[{"name": "s", "value": {"stringValue": big}}]
        )
    )
    assert response["records"] == [[{"longValue": len(big)}]]


STOCK_COLUMNS = (
    "stock_id, date_id, seconds_in_bucket, imbalance_size, imbalance_buy_sell_flag, reference_price, "
    "matched_size, far_price, near_price, bid_price, bid_size, ask_price, ask_size, wap, target, "
    "time_id, row_id"
)
STOCK_INSERT = (
    f"INSERT INTO stock_data ({STOCK_COLUMNS}) VALUES (:stock_id, :date_id, :seconds_in_bucket, "
    ":imbalance_size, :imbalance_buy_sell_flag, :reference_price, :matched_size, :far_price, :near_price, "
    ":bid_price, :bid_size, :ask_price, :ask_size, :wap, :target, :time_id, :row_id)"
)


def stock_row(i: int) -> dict[str, Any]:
    stock_id, step, date_id = i % 200, (i // 200) % 55, 900 + i // 11_000
    seconds = step * 10
    return {
        "stock_id": stock_id,
        "date_id": date_id,
        "seconds_in_bucket": seconds,
        "imbalance_size": 3753451.43 + i,
        "imbalance_buy_sell_flag": (-1, 0, 1)[i % 3],
        "reference_price": 0.999875 + i * 1e-9,
        "matched_size": 11548975.43,
        "far_price": None if seconds < 300 else 1.000123,
        "near_price": None if seconds < 300 else 1.000456,
        "bid_price": 0.999875,
        "bid_size": 22940.0,
        "ask_price": 1.00005,
        "ask_size": 9177.6,
        "wap": 1.0,
        "target": None if i % 5 == 0 else -3.029704 + i * 1e-6,
        "time_id": date_id * 55 + step,
        "row_id": f"{date_id}_{seconds}_{stock_id}",
    }


@pytest.fixture
def clean_stock_data(session_api: DataApi) -> Iterator[Callable[[], None]]:
    def clean() -> None:
        session_api.execute("DELETE FROM stock_data WHERE date_id >= 900")

    clean()
    yield clean
    clean()


def test_batch_of_twenty_thousand_stock_rows_splits_under_four_mib_and_all_land(
    api: DataApi, wire: Any, clean_stock_data: Callable[[], None]
) -> None:
    # Given 20,000 stock_data rows (far more than 4 MiB of parameters)
    rows = [stock_row(i) for i in range(20_000)]
    # When they are batch-inserted
    executed = api.batch_execute(STOCK_INSERT, rows)
    # Then several BatchExecute requests went out, each under 4 MiB and all accepted
    batch_sizes = [size for op, size in wire.requests if op == "BatchExecute"]
    assert executed == 20_000
    assert len(batch_sizes) >= 4
    assert max(batch_sizes) < MAX_REQUEST_BYTES
    assert all(status == 200 for _, status, _ in wire.responses)
    # and every row landed exactly as sent
    assert api.execute("SELECT count(*) AS n FROM stock_data WHERE date_id >= 900").records == [{"n": 20_000}]
    back = api.query(f"SELECT {STOCK_COLUMNS} FROM stock_data WHERE date_id >= 900 ORDER BY row_id")
    assert sorted(back, key=lambda r: r["row_id"]) == sorted(rows, key=lambda r: r["row_id"])
