"""`replay` onto a real Kinesis endpoint (moto server mode): every row lands once, in time order per shard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from closecast_tools.market.generate import write_dataset
from closecast_tools.market.replay import ReplayError, ReplayOptions, open_source, replay

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("market") / "m"
    write_dataset(directory, days=2, seed=21)
    return directory


def _source(directory: Path) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    frames, _ = open_source([directory])
    days = list(frames)
    return days, pd.concat(days, ignore_index=True)


def _options(**kwargs: Any) -> ReplayOptions:
    return ReplayOptions(progress=False, **kwargs)


def _rows(shards: dict[str, list[tuple[str, Any]]], shape: str) -> dict[str, list[dict[str, Any]]]:
    """Snapshot rows per shard, in arrival order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for shard, records in shards.items():
        rows: list[dict[str, Any]] = []
        for _, body in records:
            if "revealed_targets" in body:
                continue
            rows.extend(body["data"] if shape == "envelope" else [body])
        out[shard] = rows
    return out


def _in_time_order(rows: list[dict[str, Any]]) -> bool:
    times = [(r["date_id"], r["seconds_in_bucket"]) for r in rows]
    return times == sorted(times)


@pytest.mark.parametrize("shape", ["row", "envelope"])
def test_every_row_lands_exactly_once_in_time_order_per_shard(
    kinesis: Any, read_stream: Any, stream: str, market_dir: Path, shape: str
) -> None:
    # Given a generated 2-day market and a 2-shard stream
    days, source = _source(market_dir)
    # When it is replayed in this shape
    summary = replay(days, kinesis, stream, _options(shape=shape))
    # Then reading every shard back gives each row exactly once, with its values, in time order per shard
    rows = _rows(read_stream(kinesis, stream), shape)
    landed = [row for shard_rows in rows.values() for row in shard_rows]
    assert sorted(r["row_id"] for r in landed) == sorted(source.row_id)
    assert all(_in_time_order(shard_rows) for shard_rows in rows.values())
    assert summary.rows == len(source)
    by_id = {r["row_id"]: r for r in landed}
    sample = source.iloc[1234]
    assert by_id[sample.row_id]["wap"] == sample.wap and by_id[sample.row_id]["target"] == sample.target


def test_revealed_targets_follow_each_day_and_rows_carry_none(
    kinesis: Any, read_stream: Any, stream: str, market_dir: Path
) -> None:
    # Given a generated market replayed with --reveal-targets
    days, source = _source(market_dir)
    summary = replay(days, kinesis, stream, _options(shape="envelope", reveal_targets=True))
    shards = read_stream(kinesis, stream)
    # Then the rows carry no target, every target arrives once in a targets_D record with its value,
    targets: dict[tuple[int, int, int], float] = {}
    for records in shards.values():
        for key, body in records:
            if "revealed_targets" in body:
                assert key.startswith("targets_")
                for item in body["revealed_targets"]:
                    triple = (item["date_id"], item["seconds_in_bucket"], item["stock_id"])
                    assert triple not in targets
                    targets[triple] = item["target"]
            else:
                assert all("target" not in row for row in body["data"])
    expected = dict(
        zip(
            zip(source.date_id, source.seconds_in_bucket, source.stock_id, strict=True),
            source.target,
            strict=True,
        )
    )
    assert targets == {tuple(int(v) for v in k): t for k, t in expected.items()}
    assert summary.targets == len(source)
    # and on its shard a day's targets come after that day's snapshots there and before the next day's
    for records in shards.values():
        for position, (key, body) in enumerate(records):
            if "revealed_targets" in body:
                day = int(key.removeprefix("targets_"))
                before = [b["data"][0]["date_id"] for _, b in records[:position] if "data" in b]
                after = [b["data"][0]["date_id"] for _, b in records[position + 1 :] if "data" in b]
                assert all(d <= day for d in before) and all(d > day for d in after)


def test_kaggle_example_files_land_every_row(
    kinesis: Any, read_stream: Any, stream: str, kaggle_example: Path
) -> None:
    # Given the real test.csv + revealed_targets.csv (33,000 rows, 22,000 known targets)
    frames, total = open_source([kaggle_example / "test.csv", kaggle_example / "revealed_targets.csv"])
    # When replayed as envelopes with revealed targets
    summary = replay(frames, kinesis, stream, _options(shape="envelope", reveal_targets=True))
    # Then all 33,000 rows and the 22,000 targets land, each once
    rows = [
        row for shard_rows in _rows(read_stream(kinesis, stream), "envelope").values() for row in shard_rows
    ]
    assert total == 33_000 and len(rows) == 33_000 and len({r["row_id"] for r in rows}) == 33_000
    assert summary.targets == 22_000


class Flaky:
    """A real client whose PutRecords answers claim some records failed (they are then not sent)."""

    def __init__(self, client: Any, fail_rounds: int | None) -> None:
        self.client = client
        self.calls = 0
        self.fail_rounds = fail_rounds  # None: fail forever

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        failing = self.fail_rounds is None or self.calls <= self.fail_rounds
        if not failing:
            return self.client.put_records(StreamName=StreamName, Records=Records)
        keep = [r for i, r in enumerate(Records) if i % 2]  # even positions "throttled"
        sent = iter(self.client.put_records(StreamName=StreamName, Records=keep)["Records"] if keep else [])
        results = [
            next(sent)
            if i % 2
            else {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "x"}
            for i in range(len(Records))
        ]
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_throttled_records_are_retried_and_all_land_once(
    kinesis: Any, read_stream: Any, stream: str, market_dir: Path
) -> None:
    # Given a stream that throttles half of the records of the first 5 calls
    days, _ = _source(market_dir)
    one_day = days[:1]
    # When replayed
    summary = replay(one_day, Flaky(kinesis, fail_rounds=5), stream, _options(backoff_base=0.001))
    # Then every row of the day lands exactly once and the retries are counted
    rows = [row for shard_rows in _rows(read_stream(kinesis, stream), "row").values() for row in shard_rows]
    assert sorted(r["row_id"] for r in rows) == sorted(one_day[0].row_id)
    assert summary.retries > 0 and summary.rows == len(one_day[0])


def test_records_that_never_land_raise_with_the_exact_count(
    kinesis: Any, read_stream: Any, stream: str, market_dir: Path
) -> None:
    # Given a stream that always throttles half of every batch
    days, source = _source(market_dir)
    # When replayed with 3 attempts per record
    with pytest.raises(ReplayError) as raised:
        replay(days, Flaky(kinesis, fail_rounds=None), stream, _options(max_attempts=3, backoff_base=0.001))
    # Then the error says how many rows were not sent, and that is exactly what is missing from the stream
    landed = sum(len(r) for r in _rows(read_stream(kinesis, stream), "row").values())
    summary = raised.value.summary
    assert summary.rows == landed
    assert summary.rows_not_sent == len(source) - landed > 0
    assert f"{summary.rows_not_sent} rows" in str(raised.value)


def test_a_stream_that_goes_away_mid_replay_is_reported_with_exact_counts() -> None:
    """Given a replay to an endpoint where nothing listens (the local cloud was stopped), when it runs, then it
    ends with a ReplayError whose summary says exactly how many rows were not sent, not a traceback."""
    import socket

    import boto3
    from botocore.config import Config

    from closecast_tools.market.generate import generate_frame

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    kinesis = boto3.client(
        "kinesis",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    frame: pd.DataFrame = generate_frame(days=1, seed=3, n_stocks=10)
    options = ReplayOptions(progress=False, max_attempts=2, backoff_base=0.0, sleep=lambda s: None)
    with pytest.raises(ReplayError) as raised:
        replay([frame], kinesis, "gone", options)
    summary = raised.value.summary
    assert summary.rows == 0
    assert summary.rows_not_sent == len(frame)
    assert "EndpointConnectionError" in summary.errors
