"""The stream as its producers use it, through the whole local cloud: the real Kaggle example files with
corrupted records mixed in, replayed twice; the original project's producer records; date mappings made on
ingest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from closecast.market.schema import PRICE_COLUMNS, SIZE_COLUMNS
from closecast.trading_calendar import xnas
from closecast_tools.local.cloud import client
from closecast_tools.market.replay import Record, batches, open_source, snapshot_records, target_records
from tests.integration.test_local_cloud import (
    _signed_in,  # noqa: F401 (autouse here too: the API is read as the demo user)
    http,
    kaggle_rows,
    moved,
    wait_for_total,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST_TRADING_DATE = dt.date(2023, 1, 3)  # the template's default
FLOAT_COLUMNS = (*PRICE_COLUMNS, *SIZE_COLUMNS)


def put(cloud: Any, records: list[Record]) -> None:
    kinesis = client("kinesis", cloud.state["aws_endpoint_url"])
    for batch in batches(records):
        entries = [{"Data": r.data, "PartitionKey": r.partition_key} for r in batch]
        response = kinesis.put_records(StreamName=cloud.state["stream_name"], Records=entries)
        assert response["FailedRecordCount"] == 0


def all_rows(cloud: Any, date_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        status, body = http(
            "GET", f"{cloud.state['api_url']}/stock_data/?date_id={date_id}&page_size=1000&page={page}"
        )
        assert status == 200, body
        rows.extend(body["data"])
        if page >= body["total_pages"]:
            return rows
        page += 1


def quarantine_keys(cloud: Any) -> set[str]:
    s3 = client("s3", cloud.state["aws_endpoint_url"])
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=cloud.state["bucket"], Prefix="quarantine/"
    ):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    return keys


def quarantined(cloud: Any, data: bytes) -> dict[str, Any] | None:
    s3 = client("s3", cloud.state["aws_endpoint_url"])
    key = f"quarantine/{hashlib.sha256(data).hexdigest()}.json"
    try:
        return dict(json.loads(s3.get_object(Bucket=cloud.state["bucket"], Key=key)["Body"].read()))
    except s3.exceptions.NoSuchKey:
        return None


def shifted(day: pd.DataFrame, offset: int) -> pd.DataFrame:
    """The same day on date_id + offset (time_id and row_id recomputed), so the test owns its rows."""
    day = day.copy()
    day["date_id"] = (
        day["date_id"].astype("int64") + offset
    )  # the loader's small integer types would overflow
    day["time_id"] = day["date_id"] * 55 + day["seconds_in_bucket"].astype("int64") // 10
    day["row_id"] = [
        f"{d}_{s}_{i}"
        for d, s, i in zip(day["date_id"], day["seconds_in_bucket"], day["stock_id"], strict=True)
    ]
    return day


BAD_ROWS: list[tuple[dict[str, Any], str]] = [  # (what is changed in the row, the field at fault)
    ({"imbalance_buy_sell_flag": 7}, "imbalance_buy_sell_flag"),
    ({"bid_size": -1.0}, "bid_size"),
    ({"date_id": "9478"}, "date_id"),
    ({"wap": "1.0"}, "wap"),
    ({"seconds_in_bucket": 15}, "seconds_in_bucket"),
    ({"ask_price": 0.0}, "ask_price"),
]


def bad_records(row: dict[str, Any]) -> list[tuple[bytes, str]]:
    """Whole records that cannot be read, made from `row`: (bytes, the reason they are quarantined for)."""
    text = json.dumps(row).encode()
    return [
        (text[:-7], "not JSON"),
        (b"\xff\xfe" + text, "not JSON"),
        (json.dumps([row]).encode(), "expected a JSON object"),
        (json.dumps({"data": "rows", "commit": True}).encode(), "invalid envelope"),
    ]


def test_the_example_files_with_one_percent_corrupted_rows_land_exactly_and_a_replay_changes_nothing(
    local_cloud: Any, shared_data: Path
) -> None:
    """Given Kaggle's example test.csv and revealed_targets.csv (33,000 rows of dates 478-480, moved to
    9478-9480) as `closecast replay` makes them (one envelope per snapshot, then each day's revealed targets),
    with 1% of the rows corrupted in six ways and four unreadable records mixed in, when put on the stream, then
    every good row is stored once with its exact values and real revealed target, every bad row and record is
    in the quarantine with its reason (and the field at fault); when the same records are put again, no stored
    row and no quarantine object changes."""
    example = shared_data / "kaggle-example"
    frames, _ = open_source([example / "test.csv", example / "revealed_targets.csv"])
    records: list[Record] = []
    expected: dict[str, dict[str, Any]] = {}
    targets: dict[str, float | None] = {}
    bad_rows: list[tuple[bytes, int, str]] = []  # (record, row index, field at fault)
    seen = 0
    for day in frames:
        day = shifted(day, 9000)
        for _, snapshot in day.groupby("seconds_in_bucket", sort=True):
            (record,) = snapshot_records(snapshot, "envelope", with_target=False)
            envelope = json.loads(record.data)
            faults = []
            for index, row in enumerate(envelope["data"]):
                if seen % 100 == 99:  # 1 row in 100
                    change, field = BAD_ROWS[len(bad_rows) % len(BAD_ROWS)]
                    envelope["data"][index] = {**row, **change}
                    faults.append((index, field))
                else:
                    expected[row["row_id"]] = row
                seen += 1
            data = json.dumps(envelope).encode()
            bad_rows.extend((data, index, field) for index, field in faults)
            records.append(Record(data, record.partition_key))
        records.extend(target_records(day))
        for row_id, target in zip(day["row_id"], day["target"], strict=True):
            targets[row_id] = None if pd.isna(target) else float(target)
    unreadable = bad_records(next(iter(expected.values())))
    for position, (data, _) in enumerate(unreadable):
        records.insert(40 * (position + 1), Record(data, "bad"))
    assert len(expected) + len(bad_rows) == 33_000 and len(bad_rows) == 330

    put(local_cloud, records)
    api = local_cloud.state["api_url"]
    for date_id in (9478, 9479, 9480):
        count = sum(1 for r in expected.values() if r["date_id"] == date_id)
        wait_for_total(f"{api}/stock_data/?date_id={date_id}&page_size=1", count, timeout=300)
    with_target = sum(1 for row_id in expected if targets[row_id] is not None)
    assert with_target > 21_000
    for date_id in (9478, 9479):
        count = sum(1 for i, r in expected.items() if r["date_id"] == date_id and targets[i] is not None)
        wait_for_total(f"{api}/stock_data/?date_id={date_id}&has_target=true&page_size=1", count, timeout=120)

    first = {d: all_rows(local_cloud, d) for d in (9478, 9479, 9480)}
    stored = [r for rows in first.values() for r in rows]
    assert len(stored) == len({r["row_id"] for r in stored}) == len(expected)
    for got in stored:
        sent = expected[got["row_id"]]
        assert {k: got[k] for k in sent} == sent
        assert got["target"] == targets[got["row_id"]]
    assert sum(1 for r in stored if r["target"] is not None) == with_target
    for data, index, field in bad_rows:
        document = quarantined(local_cloud, data)
        assert document is not None
        (rejection,) = [r for r in document["rejections"] if r["row_index"] == index]
        assert rejection["reason"] == "invalid row in envelope"
        assert field in {e["field"] for e in rejection["errors"]}, rejection
    for data, reason in unreadable:
        document = quarantined(local_cloud, data)
        assert document is not None and document["reason"].startswith(reason), (data[:60], document)
    keys = quarantine_keys(local_cloud)

    marker = moved(kaggle_rows(shared_data, 478, {0})[:1], 9481)
    put(local_cloud, [*records, Record(json.dumps(marker[0]).encode(), "marker")])
    wait_for_total(f"{api}/stock_data/?date_id=9481", 1, timeout=300)
    assert {d: all_rows(local_cloud, d) for d in (9478, 9479, 9480)} == first
    assert quarantine_keys(local_cloud) == keys


def original_producer_records(shared_data: Path, date_id: int) -> list[bytes]:
    """What the replaced project's stream.py puts on Kinesis for 400 rows: pandas rows (its `id` column dropped,
    row_id a string, a `train_type` tag on each) 50 to a record as `{"data": [...], "commit": true}`,
    serialised by json.dumps, so missing values are bare NaN tokens."""
    rows = moved(kaggle_rows(shared_data, 478, {0, 10}), date_id)
    revealed = pd.read_csv(shared_data / "kaggle-example" / "revealed_targets.csv")
    revealed = revealed[revealed["date_id"] == 478].set_index(["seconds_in_bucket", "stock_id"])
    frame = pd.DataFrame(rows)
    for column in FLOAT_COLUMNS:  # as pandas reads the original's JSON: missing values are NaN
        frame[column] = frame[column].astype("float64")
    frame["target"] = [
        float(revealed.loc[(s, i), "revealed_target"])
        for s, i in zip(frame["seconds_in_bucket"], frame["stock_id"], strict=True)
    ]
    frame["train_type"] = "demo_27"
    frame["row_id"] = frame["row_id"].astype("str")
    records = []
    for start in range(0, len(frame), 50):
        batch = frame.iloc[start : start + 50].to_dict(orient="records")
        records.append(json.dumps({"data": batch, "commit": True}).encode())
    return records


def test_the_original_producers_records_land_every_row_with_its_train_type_and_date_mapping(
    local_cloud: Any, shared_data: Path
) -> None:
    """Given the original producer's 8 records of 50 rows (partition key "1", train_type "demo_27", bare NaN for
    missing prices), when put on the stream, then all 400 rows land with their values and tag, none is
    quarantined, and the date mapping of their date_id is the 1478th XNAS session from the first trading
    date."""
    date_id = 1478
    records = original_producer_records(shared_data, date_id)
    assert b"NaN" in records[0] and len(records) == 8
    kinesis = client("kinesis", local_cloud.state["aws_endpoint_url"])
    for data in records:  # put_record, one call per record, as the original did
        kinesis.put_record(StreamName=local_cloud.state["stream_name"], Data=data, PartitionKey="1")
    api = local_cloud.state["api_url"]
    body = wait_for_total(f"{api}/stock_data/?date_id={date_id}&train_type=demo_27&page_size=1000", 400)
    assert body["total_results"] == 400
    sent = {r["row_id"]: r for data in records for r in json.loads(data)["data"]}
    for got in body["data"]:
        row = sent[got["row_id"]]
        for key, value in row.items():
            assert got[key] == (None if isinstance(value, float) and value != value else value), key
    assert all(quarantined(local_cloud, data) is None for data in records)
    status, mappings = http("GET", f"{api}/date_mappings/?date_id={date_id}")
    assert status == 200
    expected = xnas().date_of(FIRST_TRADING_DATE, date_id)
    assert expected is not None
    assert [(m["date_id"], m["date"]) for m in mappings["data"]] == [(date_id, expected.isoformat())]


def test_an_existing_date_mapping_is_never_changed_by_ingest(local_cloud: Any, shared_data: Path) -> None:
    """Given a date mapping posted by hand for a date_id, when rows of that date_id are ingested, then the
    mapping stays as it was posted."""
    api = local_cloud.state["api_url"]
    status, _ = http("POST", f"{api}/date_mappings/", {"data": [{"date_id": 1999, "date": "2031-02-03"}]})
    assert status == 201
    rows = moved(kaggle_rows(shared_data, 479, {0})[:5], 1999)
    kinesis = client("kinesis", local_cloud.state["aws_endpoint_url"])
    kinesis.put_record(
        StreamName=local_cloud.state["stream_name"],
        Data=json.dumps({"data": rows, "commit": True}).encode(),
        PartitionKey="1",
    )
    wait_for_total(f"{api}/stock_data/?date_id=1999", 5)
    time.sleep(0.5)
    _, mappings = http("GET", f"{api}/date_mappings/?date_id=1999")
    assert [m["date"] for m in mappings["data"]] == ["2031-02-03"]
