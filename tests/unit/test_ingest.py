"""Ingest logic: record shapes, validation, partial failures and the quarantine decision."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from closecast import ingest
from closecast.db.errors import CheckViolation, DatabaseResuming, SerializationFailure, UndefinedTable
from closecast.resources.stock_data import sql as stock_data_sql
from tests.conftest import load_event

pytestmark = pytest.mark.unit


@dataclass
class Call:
    """One bulk write statement, its JSON parameters decoded."""

    sql: str
    rows: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    dates: list[dict[str, Any]]
    params: dict[str, Any]


class RecordingApi:
    """Stands in for the Data API in unit tests: records the statements, optionally fails."""

    def __init__(self, fail_with: Exception | None = None, fail_when: Any = None) -> None:
        self.calls: list[Call] = []
        self.fail_with = fail_with
        self.fail_when = fail_when or (lambda call: True)

    def execute(self, sql: str, params: dict[str, Any], **_: Any) -> None:
        call = Call(
            sql,
            stock_data_sql.rows_from_parameters(params),
            *(json.loads(params[k]) for k in ("targets", "dates")),
            params,
        )
        if self.fail_with is not None and self.fail_when(call):
            raise self.fail_with
        self.calls.append(call)


class Store(list[ingest.Rejection]):
    """Stands in for the S3 quarantine: keeps the rejections of every entry it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[ingest.QuarantineEntry] = []

    def __call__(self, entries: Sequence[ingest.QuarantineEntry]) -> set[str]:
        self.entries.extend(entries)
        self.extend(r for e in entries for r in e.rejections)
        return set()


def records(event_file: str) -> list[ingest.StreamRecord]:
    return ingest.records_from_event(load_event(event_file))


def test_rows_one_per_record_are_written_in_one_call() -> None:
    """Given three valid row records, when the batch is processed, then one upsert carries all three rows."""
    api = RecordingApi()
    quarantined = Store()
    outcome = ingest.process_batch(api, records("ingest/kinesis-rows.json"), quarantined)
    assert outcome.rows_written == 3
    assert len(api.calls) == 1 and len(api.calls[0].rows) == 3
    assert quarantined == [] and outcome.response() == {"batchItemFailures": []}


def test_envelope_rows_are_written() -> None:
    """Given an envelope record of three rows, when processed, then the three rows are upserted."""
    api = RecordingApi()
    outcome = ingest.process_batch(api, records("ingest/kinesis-envelope.json"), Store())
    assert outcome.rows_written == 3 and outcome.rejections == []


def test_bad_records_are_quarantined_and_good_ones_still_written() -> None:
    """Given a batch with a valid row, a non-JSON record and an invalid flag, when processed, then the valid row
    is written, both bad records are quarantined with their reason, and nothing is reported for retry."""
    api = RecordingApi()
    quarantined = Store()
    outcome = ingest.process_batch(api, records("ingest/kinesis-mixed-bad.json"), quarantined)
    assert outcome.rows_written == 1
    reasons = sorted(r.reason.split(":")[0] for r in quarantined)
    assert reasons == ["invalid row", "not JSON"]
    invalid = next(r for r in quarantined if r.reason == "invalid row")
    assert invalid.errors[0]["field"] == "imbalance_buy_sell_flag"
    assert outcome.failed_sequence_numbers == []


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8-sig"),
        lambda text: text.encode("utf-16"),
        lambda text: text.replace('"train_type": null', '"train_type": "\\ud800"').encode(),
    ],
    ids=["utf-8 with BOM", "utf-16", "lone surrogate escape"],
)
def test_records_the_fast_json_parser_refuses_are_read_as_the_standard_library_reads_them(
    encode: Any,
) -> None:
    """Given a record that pydantic-core's JSON parser refuses but `json.loads` reads, when parsed, then it is
    read as before: one row, whose values are `json.loads`' (here a lone surrogate is then refused by the row
    rules, as it was)."""
    row = json.loads(
        base64.b64decode(load_event("ingest/kinesis-rows.json")["Records"][0]["kinesis"]["data"])
    )
    data = encode(json.dumps({**row, "train_type": None}))
    parsed, rejections = ingest.parse(ingest.StreamRecord("1", "k", data))
    expected = json.loads(data)
    if expected["train_type"] is None:
        assert rejections == [] and parsed.rows[0].model_dump(include=set(row)) == row
    else:
        assert parsed.rows == [] and rejections[0].errors[0]["field"] == "train_type"


def test_envelope_with_one_bad_row_keeps_the_others() -> None:
    """Given an envelope whose second row has a negative size, when parsed, then two rows pass and the bad one
    is rejected with its index."""
    event = load_event("ingest/kinesis-envelope.json")
    body = json.loads(base64.b64decode(event["Records"][0]["kinesis"]["data"]))
    body["data"][1]["bid_size"] = -5
    event["Records"][0]["kinesis"]["data"] = base64.b64encode(json.dumps(body).encode()).decode()
    parsed, rejections = ingest.parse(ingest.records_from_event(event)[0])
    assert len(parsed.rows) == 2
    assert [r.row_index for r in rejections] == [1]
    assert rejections[0].errors[0]["field"] == "bid_size"


def test_row_id_must_match_its_keys() -> None:
    """Given a row whose row_id disagrees with date/seconds/stock, when parsed, then it is rejected naming row_id."""
    row = {
        "stock_id": 3,
        "date_id": 5,
        "seconds_in_bucket": 10,
        "imbalance_buy_sell_flag": 0,
        "row_id": "5_10_4",
    }
    record = ingest.StreamRecord("1", "3", json.dumps(row).encode())
    _, rejections = ingest.parse(record)
    assert rejections and "row_id" in json.dumps(rejections[0].errors)


def test_revealed_targets_are_upserted_apart_in_one_call() -> None:
    """Given a revealed-targets record, when processed, then both targets go in one statement, to the
    revealed_target table."""
    api = RecordingApi()
    outcome = ingest.process_batch(api, records("ingest/kinesis-revealed-targets.json"), Store())
    assert outcome.targets_revealed == 2
    (call,) = api.calls
    assert "INSERT INTO revealed_target" in call.sql and call.rows == []
    assert call.targets[0] == {"date_id": 478, "seconds_in_bucket": 0, "stock_id": 0, "target": -5.429983}


def test_transient_database_fault_reports_every_writing_record_for_retry() -> None:
    """Given the database is resuming, when a batch is processed, then every record that had rows is reported
    as a batch item failure (Kinesis delivers them again), and none is quarantined."""
    api = RecordingApi(fail_with=DatabaseResuming("resuming"))
    batch = records("ingest/kinesis-rows.json")
    quarantined = Store()
    outcome = ingest.process_batch(api, batch, quarantined)
    assert outcome.failed_sequence_numbers == [r.sequence_number for r in batch]
    assert quarantined == []


def test_a_record_the_database_refuses_is_isolated_and_quarantined() -> None:
    """Given the database refuses the batch because of one record, when processed, then records are written one
    by one, the refused record is quarantined with the database message and the others land."""
    batch = records("ingest/kinesis-rows.json")
    bad_stock = json.loads(batch[1].data)["stock_id"]

    def refuses(call: Call) -> bool:
        return any(row["stock_id"] == bad_stock for row in call.rows)

    api = RecordingApi(
        fail_with=CheckViolation("violates check constraint", sqlstate="23514"), fail_when=refuses
    )
    quarantined = Store()
    outcome = ingest.process_batch(api, batch, quarantined)
    assert outcome.rows_written == 2
    assert [r.record.sequence_number for r in quarantined] == [batch[1].sequence_number]
    assert quarantined[0].reason.startswith("refused by the database")


def test_a_record_that_cannot_be_quarantined_is_delivered_again() -> None:
    """Given the quarantine store fails, when a bad record is processed, then it is reported for retry, not lost."""

    def broken(_: Sequence[ingest.QuarantineEntry]) -> set[str]:
        raise OSError("s3 down")

    batch = records("ingest/kinesis-mixed-bad.json")
    outcome = ingest.process_batch(RecordingApi(), batch, broken)
    assert outcome.failed_sequence_numbers == [batch[1].sequence_number, batch[2].sequence_number]


def test_quarantine_document_keeps_the_raw_record() -> None:
    """Given a non-UTF-8 record, when its quarantine document is built, then the bytes are kept in base64."""
    record = ingest.StreamRecord("42", "k", b"\xff\xfe", "shardId-0")
    entry = ingest.QuarantineEntry(record, [ingest.Rejection(record, "not JSON")])
    document = entry.document()
    assert document["record"]["data"] is None
    assert base64.b64decode(document["record"]["data_base64"]) == b"\xff\xfe"
    digest = hashlib.sha256(record.data).hexdigest()
    assert entry.key("quarantine/") == f"quarantine/{digest}.json"


def test_every_bad_row_of_an_envelope_goes_into_one_quarantine_object() -> None:
    """Given an envelope whose three rows are all invalid, when processed, then one quarantine entry holds the
    three rejections with their row indices (one S3 object per record, not per row)."""
    event = load_event("ingest/kinesis-envelope.json")
    body = json.loads(base64.b64decode(event["Records"][0]["kinesis"]["data"]))
    for row in body["data"]:
        row["imbalance_buy_sell_flag"] = 5
    event["Records"][0]["kinesis"]["data"] = base64.b64encode(json.dumps(body).encode()).decode()
    store = Store()
    ingest.process_batch(RecordingApi(), ingest.records_from_event(event), store)
    (entry,) = store.entries
    document = entry.document()
    assert [r["row_index"] for r in document["rejections"]] == [0, 1, 2]
    assert document["reason"].startswith("3 rows rejected")


@pytest.mark.parametrize(
    "error",
    [
        SerializationFailure("deadlock detected", sqlstate="40P01"),
        UndefinedTable('relation "stock_data" does not exist', sqlstate="42P01"),
    ],
    ids=["deadlock", "missing-table"],
)
def test_database_faults_that_are_not_about_the_data_are_retried_not_quarantined(error: Exception) -> None:
    """Given a deadlock or a missing table (faults of the moment, not of the records), when a batch is
    processed, then every writing record is reported for redelivery and nothing is quarantined."""
    batch = records("ingest/kinesis-rows.json")
    quarantined = Store()
    outcome = ingest.process_batch(RecordingApi(fail_with=error), batch, quarantined)
    assert outcome.failed_sequence_numbers == [r.sequence_number for r in batch]
    assert quarantined == []


def test_one_refused_row_of_an_envelope_does_not_sink_the_others() -> None:
    """Given an envelope of three rows of which the database refuses the middle one, when processed, then the
    other two are written and only that row is quarantined, with its index in the envelope."""
    batch = records("ingest/kinesis-envelope.json")
    bad_stock = json.loads(batch[0].data)["data"][1]["stock_id"]

    def refuses(call: Call) -> bool:
        return any(row["stock_id"] == bad_stock for row in call.rows)

    api = RecordingApi(
        fail_with=CheckViolation("violates check constraint", sqlstate="23514"), fail_when=refuses
    )
    quarantined = Store()
    outcome = ingest.process_batch(api, batch, quarantined)
    assert outcome.rows_written == 2
    assert [(r.row_index, r.reason.split(":")[0]) for r in quarantined] == [(1, "refused by the database")]
    assert outcome.failed_sequence_numbers == []


def test_out_of_range_integers_are_refused_at_validation() -> None:
    """Given a row whose date_id would overflow the database's integer time_id, when parsed, then it is
    rejected naming date_id instead of failing later in the database."""
    row = {"stock_id": 1, "date_id": 10**20, "seconds_in_bucket": 0, "imbalance_buy_sell_flag": 0}
    _, rejections = ingest.parse(ingest.StreamRecord("1", "1", json.dumps(row).encode()))
    assert rejections and rejections[0].errors[0]["field"] == "date_id"


def test_strings_and_booleans_are_not_taken_for_numbers() -> None:
    """Given a row with "5" for date_id and true for stock_id, when parsed, then it is rejected (strict)."""
    row = {"stock_id": True, "date_id": "5", "seconds_in_bucket": 10, "imbalance_buy_sell_flag": 0}
    _, rejections = ingest.parse(ingest.StreamRecord("1", "1", json.dumps(row).encode()))
    fields = {e["field"] for e in rejections[0].errors}
    assert {"stock_id", "date_id"} <= fields


def test_the_date_mappings_of_the_batch_go_in_the_same_call() -> None:
    """Given rows of date 478 and a calendar, when processed, then the one statement also carries the date
    mapping of date 478 (created if new)."""
    api = RecordingApi()
    ingest.process_batch(
        api, records("ingest/kinesis-rows.json"), Store(), lambda d: dt.date(2024, 11, 1) + dt.timedelta(d)
    )
    (call,) = api.calls
    date_ids = sorted({row["date_id"] for row in call.rows})
    assert call.dates == [
        {"date_id": d, "trading_date": (dt.date(2024, 11, 1) + dt.timedelta(d)).isoformat()} for d in date_ids
    ]
    assert "INSERT INTO date_mapping" in call.sql and "ON CONFLICT DO NOTHING" in call.sql


def test_the_outcome_names_the_days_whose_rows_were_written_for_the_chain_hook() -> None:
    """Given valid row records and a record that fails on a transient fault, when processed, then the outcome
    names the days of the rows written (the handler checks them for completeness: a day's last rows may land
    after its targets) and not those of a record delivered again."""
    api = RecordingApi()
    outcome = ingest.process_batch(api, records("ingest/kinesis-rows.json"), Store())
    assert outcome.row_dates == sorted({row["date_id"] for row in api.calls[0].rows})
    failing = RecordingApi(fail_with=DatabaseResuming("resuming"))
    assert ingest.process_batch(failing, records("ingest/kinesis-rows.json"), Store()).row_dates == []


def test_a_key_sent_twice_in_a_batch_is_written_once_with_its_later_values() -> None:
    """Given two records with the same row key (the later with another wap), when processed, then the
    statement carries the row once, with the later wap (one upsert may not touch a row twice)."""
    first = json.loads(records("ingest/kinesis-rows.json")[0].data)
    later = dict(first, wap=1.2345)
    batch = [
        ingest.StreamRecord("1", "k", json.dumps(first).encode()),
        ingest.StreamRecord("2", "k", json.dumps(later).encode()),
    ]
    api = RecordingApi()
    outcome = ingest.process_batch(api, batch, Store())
    (call,) = api.calls
    assert [row["wap"] for row in call.rows] == [1.2345] and outcome.rows_written == 1


def test_a_large_batch_is_split_into_chunks_under_the_request_limit() -> None:
    """Given 2,000 rows and a 64 KiB chunk budget, when written, then several statements carry them, each
    parameter set under the budget, every row exactly once, in key order."""
    from closecast.market.schema import KAGGLE_COLUMNS, Snapshot
    from closecast.resources.stock_data import sql

    empty = dict.fromkeys(KAGGLE_COLUMNS)
    rows = [
        Snapshot.model_validate(
            {
                **empty,
                "stock_id": s,
                "date_id": d,
                "seconds_in_bucket": 0,
                "imbalance_buy_sell_flag": 1,
                "wap": 1.0 + s / 1e4,
                "time_id": d * 55,
                "row_id": f"{d}_0_{s}",
            }
        )
        for d in (1, 2)
        for s in range(1000)
    ]
    api = RecordingApi()
    result = sql.write(api, rows, chunk_bytes=64 * 1024)  # type: ignore[arg-type]
    assert result.rows == 2000 and result.calls == len(api.calls) > 1
    keys = [(r["date_id"], r["stock_id"]) for call in api.calls for r in call.rows]
    assert keys == sorted((d, s) for d in (1, 2) for s in range(1000))
    for call in api.calls:
        assert len(json.dumps(call.params)) < 64 * 1024
