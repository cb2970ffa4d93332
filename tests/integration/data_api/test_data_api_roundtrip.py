"""Values survive client -> local endpoint -> PostgreSQL -> local endpoint -> client exactly."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest

from closecast.db import errors
from closecast.db.data_api import DataApi

pytestmark = pytest.mark.integration

DOUBLES = [
    0.1,
    1.0000001,
    1e-300,
    5e-324,  # smallest subnormal
    -0.0,
    1.7976931348623157e308,
    -2.2250738585072014e-308,
    123456789.12345679,
]

TEXTS = [
    "",
    "plain",
    "l'été \u2013 ünïcödé ✓ 日本語 🚀",
    'it\'s "quoted" \\ back\\slash',
    "line\nbreak\ttab",
    "x" * 5000,
]


@pytest.fixture(scope="module")
def roundtrip_table(session_api: DataApi) -> str:
    session_api.execute(
        """CREATE TABLE roundtrip (
            id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, f8 double precision, f4 real,
            t text, vc varchar(200), d date, ts timestamptz, tsn timestamp, j jsonb, js json,
            n numeric, b bytea, u uuid, ok boolean, ints int[], texts text[]
        )"""
    )
    return "roundtrip"


def _insert_and_read(api: DataApi, row_id: int, **values: Any) -> dict[str, Any]:
    columns = ", ".join(["id", *values])
    placeholders = ", ".join([":id", *(f":{name}" for name in values)])
    api.execute(f"INSERT INTO roundtrip ({columns}) VALUES ({placeholders})", {"id": row_id, **values})
    rows = api.execute(f"SELECT {', '.join(values)} FROM roundtrip WHERE id = :id", {"id": row_id}).records
    return rows[0]


@pytest.mark.parametrize("value", [-(2**63), -1, 0, 2**63 - 1])
def test_int8_extremes_round_trip(api: DataApi, roundtrip_table: str, value: int) -> None:
    # Given a 64-bit integer / When stored in a bigint and read back / Then it is the same integer
    row = _insert_and_read(api, 1000 + (value % 997), i8=value)
    assert row["i8"] == value and type(row["i8"]) is int


def test_small_integers_round_trip(api: DataApi, roundtrip_table: str) -> None:
    # Given int2 and int4 extremes sent as longValue / When read back / Then exact
    row = _insert_and_read(api, 2000, i2=-32768, i4=2**31 - 1)
    assert row == {"i2": -32768, "i4": 2**31 - 1}


@pytest.mark.parametrize("value", DOUBLES)
def test_doubles_round_trip_bit_for_bit(api: DataApi, roundtrip_table: str, value: float) -> None:
    # Given a double (including subnormals, the largest finite and negative zero)
    row = _insert_and_read(api, 3000 + DOUBLES.index(value), f8=value)
    # When read back / Then the same bits, sign of zero included
    assert row["f8"] == value
    assert math.copysign(1.0, row["f8"]) == math.copysign(1.0, value)
    assert row["f8"].hex() == value.hex()


def test_nulls_round_trip_in_every_column(api: DataApi, roundtrip_table: str) -> None:
    # Given NULL for every column / When read back / Then None everywhere
    names = ["i2", "i4", "i8", "f8", "t", "d", "ts", "j", "n", "b", "u", "ok"]
    row = _insert_and_read(api, 4000, **dict.fromkeys(names))
    assert row == dict.fromkeys(names)


@pytest.mark.parametrize("text", TEXTS)
def test_text_round_trips(api: DataApi, roundtrip_table: str, text: str) -> None:
    # Given text with quotes, backslashes, unicode and control characters / When read back / Then identical
    row = _insert_and_read(api, 5000 + TEXTS.index(text), t=text, vc=text[:200])
    assert row == {"t": text, "vc": text[:200]}


def test_dates_and_aware_timestamps_round_trip(api: DataApi, roundtrip_table: str) -> None:
    # Given a date, an aware timestamp with microseconds in a non-UTC zone, and a naive timestamp
    zone = dt.timezone(dt.timedelta(hours=-5))
    aware = dt.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=zone)
    naive = dt.datetime(2024, 2, 29, 0, 0, 0, 1)
    row = _insert_and_read(api, 6000, d=dt.date(2024, 2, 29), ts=aware, tsn=naive)
    # When read back / Then a date, the same instant (now in UTC), and the naive one unchanged
    assert row["d"] == dt.date(2024, 2, 29)
    assert row["ts"] == aware and row["ts"].tzinfo == dt.UTC
    assert row["ts"] == dt.datetime(2024, 1, 1, 4, 59, 59, 999999, tzinfo=dt.UTC)
    assert row["tsn"] == naive


def test_nested_json_round_trips(api: DataApi, roundtrip_table: str) -> None:
    # Given a nested document with unicode, nulls, floats and big integers
    doc = {"a": [1, 2.5, None, {"b": 'ü"q'}], "big": 2**62, "f": 1.0000001, "empty": {}, "t": True}
    # When stored in jsonb and json columns and read back / Then equal documents
    row = _insert_and_read(api, 7000, j=doc, js=[doc, 1])
    assert row["j"] == doc
    assert row["js"] == [doc, 1]


def test_numeric_bytes_uuid_bool_round_trip(api: DataApi, roundtrip_table: str) -> None:
    # Given an exact decimal, arbitrary bytes, a UUID and a boolean
    value = uuid.uuid4()
    blob = bytes(range(256))
    row = _insert_and_read(api, 8000, n=Decimal("-12345678901234567890.000000001"), b=blob, u=value, ok=False)
    # When read back / Then Decimal exact, bytes identical, UUID as its string, bool
    assert row == {"n": Decimal("-12345678901234567890.000000001"), "b": blob, "u": str(value), "ok": False}


def test_arrays_come_back_as_lists(api: DataApi, roundtrip_table: str) -> None:
    # Given array columns written with SQL literals (the Data API takes no array parameters)
    api.execute("INSERT INTO roundtrip (id, ints, texts) VALUES (9000, '{1,NULL,3}', ARRAY['a', 'b''c'])")
    # When read back / Then lists with their elements
    row = api.execute("SELECT ints, texts FROM roundtrip WHERE id = 9000").records[0]
    assert row == {"ints": [1, None, 3], "texts": ["a", "b'c"]}


def test_column_metadata_reports_postgres_types_and_nullability(
    client: Any, target: Any, roundtrip_table: str
) -> None:
    # Given a SELECT of typed columns / When run with includeResultMetadata
    response = client.execute_statement(
        **target.request(sql="SELECT id, i8, ts, j FROM roundtrip LIMIT 1", includeResultMetadata=True)
    )
    meta = {m["name"]: m for m in response["columnMetadata"]}
    # Then each column reports its PostgreSQL type name, JDBC type, table and nullability
    assert [meta[c]["typeName"] for c in ("id", "i8", "ts", "j")] == ["int4", "int8", "timestamptz", "jsonb"]
    assert meta["id"]["type"] == 4 and meta["i8"]["type"] == -5
    assert meta["id"]["tableName"] == "roundtrip" and meta["id"]["nullable"] == 0
    assert meta["i8"]["nullable"] == 1


def test_json_record_format_returns_formatted_records(client: Any, target: Any) -> None:
    # Given formatRecordsAs=JSON / When a SELECT runs
    response = client.execute_statement(
        **target.request(
            sql="SELECT 1 AS a, 'x' AS b, 2.5::float8 AS c, NULL::int AS d", formatRecordsAs="JSON"
        )
    )
    # Then formattedRecords is a JSON list of objects and records is absent
    assert json.loads(response["formattedRecords"]) == [{"a": 1, "b": "x", "c": 2.5, "d": None}]
    assert "records" not in response


def test_string_parameter_is_varchar_as_on_aurora(api: DataApi) -> None:
    # Given a str compared with a jsonb value without a type hint or cast
    # When executed / Then PostgreSQL refuses it as Aurora does (the driver types strings as varchar)
    with pytest.raises(errors.DatabaseError) as caught:
        api.execute("SELECT '{}'::jsonb = :doc AS same", {"doc": "{}"})
    assert "character varying" in caught.value.pg_message
    # and with an explicit cast it works
    assert api.execute("SELECT '{}'::jsonb = :doc::jsonb AS same", {"doc": "{}"}).records == [{"same": True}]
