"""A Kinesis stream in moto's server mode (a real HTTP endpoint on loopback), and a reader for it."""

from __future__ import annotations

import itertools
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
EXAMPLE = SHARED_DATA / "kaggle-example"
_names = itertools.count()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def kinesis_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kinesis(kinesis_endpoint: str) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=kinesis_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def stream(kinesis: Any) -> str:
    """A new 2-shard stream per test (moto's state lives as long as the server)."""
    name = f"market-{next(_names)}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name


@pytest.fixture(scope="session")
def kaggle_example() -> Path:
    if not (EXAMPLE / "test.csv").is_file():
        pytest.skip(
            f"the real Kaggle example files are not at {EXAMPLE.resolve()} (shared/data/kaggle-example)"
        )
    return EXAMPLE


@pytest.fixture(scope="session")
def read_stream() -> Any:
    """The reader below, as a fixture (test modules do not import conftest)."""
    return _read_stream


def _read_stream(client: Any, stream: str) -> dict[str, list[tuple[str, Any]]]:
    """Every record of every shard, in shard order: {shard_id: [(partition key, decoded JSON), ...]}."""
    shards = client.list_shards(StreamName=stream)["Shards"]
    out: dict[str, list[tuple[str, Any]]] = {}
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[tuple[str, Any]] = []
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend((r["PartitionKey"], json.loads(r["Data"])) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        out[shard["ShardId"]] = records
    return out
