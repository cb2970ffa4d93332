"""Event source mapping semantics of the local cloud, against Kinesis and SQS in moto's server mode, with a
scripted function in place of a handler (what is under test is the poller)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from closecast_tools.local.cloud import client, free_port
from closecast_tools.local.poller import (
    KinesisMapping,
    KinesisShardPoller,
    MappingStats,
    SqsMapping,
    SqsPoller,
    base64_blobs_session,
)
from closecast_tools.local.runtime import InvokeResult

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class Scripted:
    """A function whose answer for each call is decided by `script(call_number, records)`."""

    def __init__(self, script: Callable[[int, list[dict[str, Any]]], InvokeResult]) -> None:
        self.script = script
        self.calls: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, function: str, event: dict[str, Any]) -> InvokeResult:
        with self.lock:
            records = event["Records"]
            self.calls.append(records)
            return self.script(len(self.calls), records)


def seqs(records: list[dict[str, Any]]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in records]


def run_kinesis(
    moto_url: str, name: str, n: int, invoke: Scripted, until: Callable[[], bool], **mapping: Any
) -> tuple[list[str], MappingStats, Any]:
    kinesis, sqs = client("kinesis", moto_url), client("sqs", moto_url)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    response = kinesis.put_records(
        StreamName=name,
        Records=[{"Data": json.dumps({"i": i}).encode(), "PartitionKey": "k"} for i in range(n)],
    )
    sent = [r["SequenceNumber"] for r in response["Records"]]
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    queue_url = sqs.create_queue(QueueName=f"{name}-failures")["QueueUrl"]
    config = KinesisMapping(
        function="F", stream_arn=arn, stream_name=name, on_failure_queue_url=queue_url, **mapping
    )
    stop, stats = threading.Event(), MappingStats()
    poller = KinesisShardPoller(
        kinesis, sqs, invoke, config, shard, "us-east-1", stop, stats, idle_sleep=0.02
    )
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not until() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return sent, stats, messages


def test_batches_respect_the_batch_size_and_keep_order(moto_url: str) -> None:
    """Given 250 records and a batch size of 100, when polled, then the function sees 100, 100, 50 in order."""
    fn = Scripted(lambda n, records: InvokeResult(True, {"batchItemFailures": []}))
    sent, stats, _ = run_kinesis(
        moto_url,
        "sizes",
        250,
        fn,
        lambda: sum(map(len, fn.calls)) >= 250,
        batch_size=100,
        report_item_failures=True,
    )
    assert [len(c) for c in fn.calls] == [100, 100, 50]
    assert [s for c in fn.calls for s in seqs(c)] == sent
    assert stats.checkpoints["shardId-000000000000"] == sent[-1]


def test_partial_failure_retries_from_the_lowest_failed_record(moto_url: str) -> None:
    """Given the function reports records 3 and 5 of 10 as failed once, when polled, then the retry starts at
    record 3 (the checkpoint is before it) and records 0-2 are not delivered again."""

    def script(n: int, records: list[dict[str, Any]]) -> InvokeResult:
        if n == 1:
            return InvokeResult(
                True,
                {
                    "batchItemFailures": [
                        {"itemIdentifier": seqs(records)[5]},
                        {"itemIdentifier": seqs(records)[3]},
                    ]
                },
            )
        return InvokeResult(True, {"batchItemFailures": []})

    fn = Scripted(script)
    sent, stats, _ = run_kinesis(
        moto_url,
        "partial",
        10,
        fn,
        lambda: len(fn.calls) >= 2,
        batch_size=10,
        report_item_failures=True,
        max_retries=3,
    )
    assert seqs(fn.calls[0]) == sent
    assert seqs(fn.calls[1]) == sent[3:]
    assert stats.retries == 1


def test_function_error_bisects_the_batch(moto_url: str) -> None:
    """Given the function fails whenever record 6 is in the batch, when polled with bisect on, then the batch is
    split until record 6 is alone, and every other record is processed."""

    def index(record: dict[str, Any]) -> int:
        return int(json.loads(base64.b64decode(record["kinesis"]["data"]))["i"])

    def script(n: int, records: list[dict[str, Any]]) -> InvokeResult:
        if any(index(r) == 6 for r in records):
            return InvokeResult(False, None, "Boom", "poison")
        return InvokeResult(True, None)

    fn = Scripted(script)

    def processed() -> set[int]:
        return {index(r) for c in list(fn.calls) if all(index(x) != 6 for x in c) for r in c}

    def done() -> bool:  # record 7 comes after the poison record has used up its retries
        return 7 in processed()

    _, stats, messages = run_kinesis(
        moto_url, "bisect", 8, fn, done, batch_size=8, bisect_on_error=True, max_retries=2
    )
    assert processed() == {0, 1, 2, 3, 4, 5, 7}
    assert sum(1 for c in fn.calls if [index(r) for r in c] == [6]) == 3  # the first try and 2 retries
    assert stats.bisects >= 2
    assert len(fn.calls[0]) == 8 and stats.sent_to_destination == 1
    assert json.loads(messages[0]["Body"])["KinesisBatchInfo"]["batchSize"] == 1


def test_exhausted_retries_go_to_the_on_failure_destination_and_the_shard_moves_on(moto_url: str) -> None:
    """Given a function that always fails and 2 retries allowed, when polled, then after 3 attempts the batch is
    described on the failure queue (shard, sequence range, size) and later records are still delivered."""

    def script(n: int, records: list[dict[str, Any]]) -> InvokeResult:
        return InvokeResult(False, None, "Boom", "always") if n <= 3 else InvokeResult(True, None)

    fn = Scripted(script)
    kinesis = client("kinesis", moto_url)
    name = "exhaust"

    def until() -> bool:
        if len(fn.calls) == 3 and not getattr(until, "added", False):
            kinesis.put_record(StreamName=name, Data=b"{}", PartitionKey="k")
            until.added = True  # type: ignore[attr-defined]
        return len(fn.calls) >= 4

    sent, stats, messages = run_kinesis(moto_url, name, 4, fn, until, batch_size=10, max_retries=2)
    assert [len(c) for c in fn.calls] == [4, 4, 4, 1]
    info = json.loads(messages[0]["Body"])["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sent[0],
        sent[-1],
        4,
    )
    assert stats.sent_to_destination == 4


def test_sqs_partial_failures_stay_on_the_queue_and_reach_the_dead_letter_queue(moto_url: str) -> None:
    """Given a queue with a redrive policy (2 receives) and a function that always fails message "bad", when
    polled, then the good messages are deleted once processed and "bad" ends in the dead-letter queue."""
    sqs = client("sqs", moto_url)
    dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="jobs",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    for body in ("a", "bad", "b"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    def script(n: int, records: list[dict[str, Any]]) -> InvokeResult:
        failures = [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "bad"]
        return InvokeResult(True, {"batchItemFailures": failures})

    fn = Scripted(script)
    mapping = SqsMapping(
        "F", "arn:aws:sqs:us-east-1:123456789012:jobs", queue, batch_size=10, report_item_failures=True
    )
    stop, stats = threading.Event(), MappingStats()
    thread = threading.Thread(target=SqsPoller(sqs, fn, mapping, "us-east-1", stop, stats).run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    dead: list[dict[str, Any]] = []
    while not dead and time.monotonic() < deadline:
        dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
        time.sleep(0.2)
    stop.set()
    thread.join(5)
    assert [m["Body"] for m in dead] == ["bad"]
    assert stats.records == 2
    bodies = [r["body"] for call in fn.calls for r in call]
    assert bodies.count("a") == 1 and bodies.count("b") == 1


def test_the_batching_window_gathers_records_that_arrive_close_together(moto_url: str) -> None:
    """Given a 3 s batching window, when three records arrive 0.2 s apart, then the function is invoked once
    with all three (it waits for the window instead of invoking per record)."""
    fn = Scripted(lambda n, records: InvokeResult(True, None))
    kinesis = client("kinesis", moto_url)
    name = "window"
    started = time.monotonic()

    def until() -> bool:
        elapsed = time.monotonic() - started
        sent = getattr(until, "sent", 1)
        if sent < 3 and elapsed > 0.2 * sent:
            kinesis.put_record(StreamName=name, Data=b"{}", PartitionKey="k")
            until.sent = sent + 1  # type: ignore[attr-defined]
        return sum(map(len, fn.calls)) >= 3

    run_kinesis(moto_url, name, 1, fn, until, batch_size=100, window_s=3.0)
    assert [len(c) for c in fn.calls] == [3]


def test_unlimited_retries_hold_the_shard_until_the_batch_succeeds(moto_url: str) -> None:
    """Given MaximumRetryAttempts -1 (the template's setting) and a function that fails 12 times (more than any
    budget it had before) and then works, when polled, then the batch is retried until it succeeds, nothing
    reaches the on-failure destination, and the records behind it are delivered after it, in order."""
    fn = Scripted(
        lambda n, records: InvokeResult(False, None, "Down", "db") if n <= 12 else InvokeResult(True)
    )
    sent, stats, messages = run_kinesis(
        moto_url, "unlimited", 3, fn, lambda: len(fn.calls) >= 13, batch_size=10, max_retries=-1
    )
    assert len(fn.calls) == 13 and all(seqs(c) == sent for c in fn.calls)
    assert stats.retries == 12 and stats.sent_to_destination == 0 and messages == []
    assert stats.checkpoints["shardId-000000000000"] == sent[-1]


def test_records_older_than_the_maximum_age_go_to_the_destination(moto_url: str) -> None:
    """Given MaximumRecordAgeInSeconds 1 and a function that always fails, when polled for 4 s, then once the
    records are older than that they are described on the on-failure queue (condition RecordAgeExceeded)
    instead of being retried for ever."""
    fn = Scripted(lambda n, records: InvokeResult(False, None, "Down", "db"))
    started = time.monotonic()
    sent, stats, messages = run_kinesis(
        moto_url, "aged", 2, fn, lambda: time.monotonic() - started > 4, batch_size=10, max_record_age_s=1
    )
    body = json.loads(messages[0]["Body"])
    assert body["requestContext"]["condition"] == "RecordAgeExceeded"
    info = body["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (sent[0], sent[-1])
    assert stats.sent_to_destination == 2 and len(messages) == 1


def test_a_parallelization_factor_delivers_partition_keys_side_by_side_each_in_order(moto_url: str) -> None:
    """Given ParallelizationFactor 2 and 80 records on eight partition keys, when polled by a function that
    takes 0.2 s a batch, then two batches run at the same time, every record is delivered once, each key's
    records in shard order, and the checkpoint ends on the last record."""
    kinesis, sqs = client("kinesis", moto_url), client("sqs", moto_url)
    name = "lanes"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    keys = [f"key-{i % 8}" for i in range(80)]
    response = kinesis.put_records(
        StreamName=name,
        Records=[{"Data": json.dumps({"i": i}).encode(), "PartitionKey": k} for i, k in enumerate(keys)],
    )
    sent = [r["SequenceNumber"] for r in response["Records"]]
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    running, most = [0], [0]
    calls: list[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def invoke(function: str, event: dict[str, Any]) -> InvokeResult:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            calls.append(event["Records"])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return InvokeResult(True, {"batchItemFailures": []})

    config = KinesisMapping(
        function="F",
        stream_arn=arn,
        stream_name=name,
        batch_size=10,
        parallelization_factor=2,
        report_item_failures=True,
    )
    stop, stats = threading.Event(), MappingStats()
    poller = KinesisShardPoller(
        kinesis, sqs, invoke, config, "shardId-000000000000", "us-east-1", stop, stats, 0.02
    )
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while stats.checkpoints.get("shardId-000000000000") != sent[-1] and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(5)
    delivered = [r for c in calls for r in c]
    assert sorted(seqs(delivered), key=sent.index) == sent and len(delivered) == 80
    for key in set(keys):
        mine = [r["kinesis"]["sequenceNumber"] for r in delivered if r["kinesis"]["partitionKey"] == key]
        assert mine == [s for s, k in zip(sent, keys, strict=True) if k == key]
    assert most[0] == 2 and stats.records == 80
    assert stats.checkpoints["shardId-000000000000"] == sent[-1]


class _CountingSqs:
    """An SQS client that notes the WaitTimeSeconds of each ReceiveMessage."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.waits: list[int] = []

    def receive_message(self, **kwargs: Any) -> Any:
        self.waits.append(kwargs["WaitTimeSeconds"])
        return self.sqs.receive_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)


def test_an_idle_sqs_poller_long_polls_and_still_takes_a_message_at_once(moto_url: str) -> None:
    """Given an empty queue, when its poller has waited 2.5 s, then it asked about three times (1 s long polls,
    as Lambda's pollers long-poll, not ten short polls a second); and a message sent meanwhile reaches the
    function well within the long poll."""
    sqs = client("sqs", moto_url)
    queue = sqs.create_queue(QueueName="idle-jobs")["QueueUrl"]
    counting = _CountingSqs(sqs)
    delivered: list[float] = []

    def script(n: int, records: list[dict[str, Any]]) -> InvokeResult:
        delivered.append(time.monotonic())
        return InvokeResult(True, None)

    mapping = SqsMapping("F", "arn:aws:sqs:us-east-1:123456789012:idle-jobs", queue, batch_size=1)
    stop, stats = threading.Event(), MappingStats()
    thread = threading.Thread(
        target=SqsPoller(counting, Scripted(script), mapping, "us-east-1", stop, stats).run, daemon=True
    )
    thread.start()
    time.sleep(2.5)
    idle_asks = len(counting.waits)
    sent = time.monotonic()
    sqs.send_message(QueueUrl=queue, MessageBody="job")
    deadline = sent + 5
    while not delivered and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert 2 <= idle_asks <= 4
    assert set(counting.waits[:idle_asks]) == {1}
    assert delivered and delivered[0] - sent < 0.5
    assert stats.records == 1


def test_a_client_that_keeps_base64_text_makes_the_same_events(moto_url: str) -> None:
    """Given records of every byte value and of several sizes, and a 1 MB payload limit, when one poller
    reads them with a client that decodes blobs to bytes and another with one that keeps their base64 text
    (`base64_blobs_session`, the local cloud's), then both invoke the function with the same batches and the
    same event data: the base64 of the bytes put."""
    kinesis = client("kinesis", moto_url)
    name = "blobs"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    payloads = [
        bytes(range(256)) * n + bytes([n % 256]) * (n % 3) for n in (1, 900, 1, 1200, 700, 2, 3000, 5)
    ]
    kinesis.put_records(StreamName=name, Records=[{"Data": p, "PartitionKey": "k"} for p in payloads])
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    events = []
    for reader in (kinesis, client("kinesis", moto_url, session=base64_blobs_session())):
        fn = Scripted(lambda n, records: InvokeResult(True, None))
        config = KinesisMapping(
            function="F", stream_arn=arn, stream_name=name, batch_size=100, max_payload_bytes=1_000_000
        )
        stop = threading.Event()
        poller = KinesisShardPoller(
            reader, None, fn, config, shard, "us-east-1", stop, MappingStats(), idle_sleep=0.02
        )
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while sum(map(len, fn.calls)) < len(payloads) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        thread.join(5)
        events.append([[r["kinesis"]["data"] for r in call] for call in fn.calls])
    expected = [base64.b64encode(p).decode() for p in payloads]
    assert events[0] == events[1]
    assert [d for call in events[1] for d in call] == expected
    assert [len(call) for call in events[1]] == [6, 1, 1]  # split by the payload limit, not the batch size
