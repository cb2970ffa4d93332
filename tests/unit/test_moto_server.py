"""The local cloud's patches to moto keep its answers: a Kinesis shard's first and last sequence numbers, the
records GetRecords returns and the base64 text of their data, and the backend each request goes to."""

from __future__ import annotations

import base64
import binascii
import json
import random
from typing import Any

import pytest
from moto.core.serialize import ResponseSerializer
from moto.kinesis.models import Record, Shard
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from closecast_tools.local.moto_server import (
    base64_data_as_put,
    canonical_base64,
    constant_time_sequence_numbers,
    get_records_body_by_pydantic_core,
    get_records_from_where_they_start,
    remember_backends_by_host,
)

pytestmark = pytest.mark.unit


def test_a_shards_first_and_last_sequence_numbers_are_the_ones_moto_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given shards empty and holding records, when the first and last sequence numbers are read in constant
    time, then they are the numbers moto's own methods give (0 for an empty shard), and records put afterwards
    go on from the last."""
    for name in ("get_min_sequence_number", "get_max_sequence_number"):
        monkeypatch.setattr(Shard, name, getattr(Shard, name))  # put back after the test
    moto_first, moto_last = Shard.get_min_sequence_number, Shard.get_max_sequence_number
    empty, full = Shard(0, 0, 2**128), Shard(1, 0, 2**128)
    for n in range(5):
        full.put_record(f"k{n}", "ZGF0YQ==", None)  # type: ignore[arg-type]
    expected = [(moto_first(s), moto_last(s)) for s in (empty, full)]

    constant_time_sequence_numbers()

    assert [(s.get_min_sequence_number(), s.get_max_sequence_number()) for s in (empty, full)] == expected
    assert expected == [(0, 0), (1, 5)]
    assert full.put_record("k", "ZGF0YQ==", None) == "6"  # type: ignore[arg-type]


def _shard(count: int) -> Shard:
    shard = Shard(0, 0, 2**128)
    for n in range(count):
        shard.put_record(f"k{n}", base64.b64encode(f"r{n}".encode()).decode(), None)  # type: ignore[arg-type]
    return shard


def _answer(result: tuple[list[Any], int, int]) -> tuple[list[int], int, int]:
    records, last, behind = result
    return [r.sequence_number for r in records], last, behind


def test_get_records_answers_as_moto_does_without_walking_the_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given shards empty, full and with a gap in their sequence numbers, when GetRecords asks from every
    position (before the first record, inside, at and past the last) with limits from none to more than the
    shard holds, then the records, the next position and the lag are the ones moto's walk gives."""
    monkeypatch.setattr(Shard, "get_records", Shard.get_records)  # put back after the test
    walk = Shard.get_records
    gap = _shard(8)
    for n in (3, 4):
        del gap.records[n]
    shards = [_shard(0), _shard(1), _shard(30), gap]
    for shard in shards:  # a lag that is not zero: the records were put a second apart
        for n, record in enumerate(shard.records.values()):
            record.created_at = 1000.0 + n
    asks = [(str(last), limit) for last in (0, 1, 2, 5, 29, 30, 31, 100) for limit in (None, 1, 2, 7, 10_000)]
    expected = [[_answer(walk(s, last, limit)) for last, limit in asks] for s in shards]

    get_records_from_where_they_start()

    assert [[_answer(s.get_records(last, limit)) for last, limit in asks] for s in shards] == expected
    assert expected[2][asks.index(("5", 2))] == ([6, 7], 7, 23_000)  # the walk itself, for reference
    assert expected[3][asks.index(("2", 7))] == ([5, 6, 7, 8], 8, 0)


def test_a_shards_records_are_found_by_their_numbers_not_by_a_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a shard of 50,000 records, when GetRecords asks for 3 records near its end, then it reads those 3
    records and not the ones before them."""
    monkeypatch.setattr(Shard, "get_records", Shard.get_records)
    shard = _shard(50_000)

    class Counting(dict[int, Any]):
        reads = 0

        def __getitem__(self, key: int) -> Any:
            Counting.reads += 1
            return super().__getitem__(key)

        def items(self) -> Any:
            raise AssertionError("the shard was walked")

    shard.records = Counting(shard.records)
    get_records_from_where_they_start()

    assert _answer(shard.get_records("49990", 3))[0:2] == ([49_991, 49_992, 49_993], 49_993)
    assert Counting.reads <= 5  # the three records and the newest (for the lag)


def test_canonical_base64_is_the_text_that_decoding_and_encoding_again_gives_back() -> None:
    """Given texts that are base64 as encoders write it, and texts that are not (stray bits before the padding,
    missing or extra padding, characters outside the alphabet, line breaks, non-ASCII), when each is checked,
    then it counts as canonical exactly when decoding it and encoding the bytes again gives the same text."""
    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n -_é"
    texts = ["", "AA==", "AQ==", "AB==", "AAA=", "AAE=", "A===", "====", "QUJD", "QUJD\n", "QUJ", "QUJD===="]
    for _ in range(20_000):
        text = base64.b64encode(rng.randbytes(rng.randint(0, 9))).decode()
        if text and rng.random() < 0.5:
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(alphabet) + text[at + 1 :]
        texts.append(text)

    def round_trips(text: str) -> bool:
        try:
            return base64.b64encode(base64.b64decode(text)).decode() == text
        except (binascii.Error, ValueError):
            return False

    assert [canonical_base64(t) for t in texts] == [round_trips(t) for t in texts]
    assert sum(map(canonical_base64, texts)) > 5_000 and not all(map(canonical_base64, texts))


def _kinesis_body(operation: str, result: dict[str, Any]) -> str:
    """The body moto's Kinesis answers `operation` with, for `result`."""
    from moto.core.responses import ActionContext, ActionResult, get_service_model
    from moto.core.serialize import get_serializer_class
    from moto.kinesis.responses import KinesisResponse

    model = get_service_model("kinesis")
    context = ActionContext(
        model, model.operation_model(operation), get_serializer_class("kinesis", "json"), KinesisResponse()
    )
    _, _, body = ActionResult(result).execute_result(context)
    return str(body)


def _get_records_text(records: list[Record]) -> str:
    result = {"NextShardIterator": "it", "Records": [r.to_json() for r in records], "MillisBehindLatest": 0}
    return _kinesis_body("GetRecords", result)


def _get_records_body(records: list[Record]) -> dict[str, Any]:
    return dict(json.loads(_get_records_text(records)))


def test_get_records_sends_a_records_data_as_the_base64_text_it_was_put_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given records put with canonical base64 (as the SDKs send it) and one with base64 that only a lenient
    decoder reads, when GetRecords serializes them, then the response is the one moto's own decode-and-encode
    gives, character for character."""
    monkeypatch.setattr(Record, "to_json", Record.to_json)
    monkeypatch.setattr(ResponseSerializer, "_base64", ResponseSerializer._base64)
    records = [
        Record("k", base64.b64encode(data).decode(), n + 1, None)  # type: ignore[arg-type]
        for n, data in enumerate(
            [b"", b"a", b"ab", b"abc", json.dumps({"x": 1.5}).encode(), bytes(range(256))]
        )
    ]
    records.append(Record("k", "QUJ\nD", 7, None))  # type: ignore[arg-type]
    expected = _get_records_body(records)

    base64_data_as_put()

    assert _get_records_body(records) == expected
    assert [isinstance(r.to_json()["Data"], str) for r in records] == [True] * 6 + [False]  # not decoded
    assert [r["Data"] for r in expected["Records"]][-1] == "QUJD"  # moto's own encoding of the lenient one


def test_each_host_goes_to_the_backend_moto_finds_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given hosts of several services and one that no backend serves, when each is looked up twice, then each
    gets the backend moto's own lookup gives; the unknown host is looked up again each time (not
    remembered)."""
    monkeypatch.setattr(
        DomainDispatcherApplication, "get_backend_for_host", DomainDispatcherApplication.get_backend_for_host
    )
    app = DomainDispatcherApplication(create_backend_app)
    hosts = [
        "kinesis.us-east-1.amazonaws.com",
        "sqs.us-east-1.amazonaws.com",
        "s3.us-east-1.amazonaws.com",
        "moto_api",
        "kinesis",
        "nothing.example.org",
        None,
    ]
    expected = [app.get_backend_for_host(h) for h in hosts]
    calls: list[str | None] = []
    moto_lookup = DomainDispatcherApplication.get_backend_for_host

    def counted(self: Any, host: str | None) -> Any:
        calls.append(host)
        return moto_lookup(self, host)

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counted)

    remember_backends_by_host()

    assert [app.get_backend_for_host(h) for h in hosts + hosts] == expected + expected
    assert expected[:5] == ["kinesis", "sqs", "s3", "moto_api", "kinesis"] and expected[5:] == [None, None]
    assert calls == [h for h in hosts if h is not None] + ["nothing.example.org"]


def test_a_get_records_body_is_the_json_value_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given records with binary data, non-ASCII and quoted partition keys, and arrival times, when GetRecords'
    body is written by pydantic-core's encoder, then it reads as the very JSON value moto's own body does;
    the body of another operation is still moto's, byte for byte."""
    from moto.core.serialize import BaseJSONSerializer

    monkeypatch.setattr(BaseJSONSerializer, "_serialize_body", BaseJSONSerializer._serialize_body)
    records = [
        Record(key, base64.b64encode(bytes(range(n, 256))).decode(), n + 1, None)  # type: ignore[arg-type]
        for n, key in enumerate(["k", "clé", 'a "quoted" \\ key', "\u2028", "7"])
    ]
    for n, record in enumerate(records):
        record.created_at_datetime = record.created_at_datetime.replace(microsecond=123_456 + n)
    expected = _get_records_text(records)
    other = _kinesis_body("GetShardIterator", {"ShardIterator": "itéré"})

    get_records_body_by_pydantic_core()

    faster = _get_records_text(records)
    assert faster != expected and json.loads(faster) == json.loads(expected)
    assert json.loads(expected)["Records"][1]["PartitionKey"] == "clé"
    assert _kinesis_body("GetShardIterator", {"ShardIterator": "itéré"}) == other
    assert "\\u00e9" in other
