"""Event source mappings of the local cloud: Kinesis and SQS pollers that invoke the functions the way Lambda's
mappings do (batch size and window, the 6 MB invocation payload, ParallelizationFactor, partial batch responses,
retries, bisect on error, on-failure destination). A Kinesis shard is read ahead by a thread of its own while a
batch is being invoked, as Lambda's pollers do.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session

from closecast_tools.local.runtime import InvokeResult

log = logging.getLogger("closecast.local.poller")

Invoke = Callable[[str, dict[str, Any]], InvokeResult]


@dataclass(frozen=True)
class KinesisMapping:
    function: str
    stream_arn: str
    stream_name: str
    batch_size: int = 100
    window_s: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    report_item_failures: bool = False
    bisect_on_error: bool = False
    max_retries: int = -1  # -1: until the record expires (Lambda's default)
    max_record_age_s: int = -1  # -1: no limit but the stream's retention (Lambda's default)
    on_failure_queue_url: str | None = None
    max_payload_bytes: int = 6 * 1024 * 1024  # Lambda's invocation payload limit also ends a batch
    parallelization_factor: int = 1  # concurrent batches per shard, records of a partition key in order


# What one record adds to the event besides its base64 data (keys, ARNs, sequence number, event ID).
_EVENT_BYTES_PER_RECORD = 600


class _ReadAhead:
    """GetRecords on one shard in a thread of its own, so that reading the next records overlaps the
    invocation of the current batch. Holds at most `limit` records; a read error is raised by `take`."""

    def __init__(
        self, kinesis: Any, iterator: str, stop: threading.Event, idle_sleep: float, limit: int
    ) -> None:
        self.kinesis, self.iterator, self.stop = kinesis, iterator, stop
        self.idle_sleep, self.limit = idle_sleep, limit
        self.records: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.closed = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="kinesis-read-ahead", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                with self.changed:
                    while not self.closed and len(self.records) >= self.limit:
                        self.changed.wait()
                    if self.closed or self.stop.is_set():
                        return
                    room = self.limit - len(self.records)
                response = self.kinesis.get_records(ShardIterator=self.iterator, Limit=min(10_000, room))
                self.iterator = response["NextShardIterator"]
                with self.changed:
                    self.records.extend(response["Records"])
                    self.changed.notify_all()
                if not response["Records"]:
                    self.stop.wait(self.idle_sleep)
        except Exception as exc:
            with self.changed:
                self.error = exc
                self.changed.notify_all()

    def take(self, timeout: float) -> list[dict[str, Any]]:
        """What has been read (waiting up to `timeout` for something)."""
        with self.changed:
            if not self.records and self.error is None:
                self.changed.wait(timeout)
            if self.error is not None:
                raise self.error
            taken, self.records = self.records, []
            self.changed.notify_all()
            return taken

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        self.thread.join(timeout=30)


class _Lane:
    """One of the concurrent batches of a shard (ParallelizationFactor > 1): the records of its partition keys,
    in shard order, delivered by a thread of its own."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.closed = False
        self.thread: threading.Thread | None = None


@dataclass(frozen=True)
class SqsMapping:
    function: str
    queue_arn: str
    queue_url: str
    batch_size: int = 10
    window_s: float = 0.0
    report_item_failures: bool = False


@dataclass
class MappingStats:
    invocations: int = 0
    records: int = 0
    retries: int = 0
    bisects: int = 0
    sent_to_destination: int = 0
    last_error: str | None = None
    checkpoints: dict[str, str] = field(default_factory=dict)


def base64_blobs_session() -> boto3.Session:
    """A boto3 session whose clients leave a response's blobs as the base64 text they came as: GetRecords'
    `Data` as the text that goes into the event as it is, rather than decoded to bytes and encoded again
    (~15 ms a 6 MB batch, in the process that runs every poller)."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(blob_parser=_as_sent)
    return boto3.Session(botocore_session=core)


def _as_sent(value: str) -> str:
    return value


def _base64(data: bytes | str) -> str:
    """A record's data as base64 text: bytes (a client that decodes blobs) encoded; base64 text (a client of
    `base64_blobs_session`) as it is."""
    return data if isinstance(data, str) else base64.b64encode(data).decode()


def _base64_size(data: bytes | str) -> int:
    """How long a record's data is as base64 text (what it takes in the event)."""
    return len(data) if isinstance(data, str) else (len(data) + 2) // 3 * 4


def kinesis_event(
    records: list[dict[str, Any]], shard_id: str, stream_arn: str, region: str
) -> dict[str, Any]:
    """The event Lambda's Kinesis mapping sends, from GetRecords records of one shard."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": _base64(r["Data"]),
                    "approximateArrivalTimestamp": _epoch(r.get("ApproximateArrivalTimestamp")),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/local",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if value is not None else time.time()


class KinesisShardPoller:
    """Reads one shard in order and delivers it to the function until stopped."""

    def __init__(
        self,
        kinesis: Any,
        sqs: Any,
        invoke: Invoke,
        mapping: KinesisMapping,
        shard_id: str,
        region: str,
        stop: threading.Event,
        stats: MappingStats,
        idle_sleep: float = 0.1,
        read_ahead: int | None = None,
    ) -> None:
        self.kinesis, self.sqs, self.invoke, self.mapping = kinesis, sqs, invoke, mapping
        self.shard_id, self.region, self.stop, self.stats = shard_id, region, stop, stats
        self.idle_sleep = idle_sleep
        # records read ahead of the batch being delivered, at most (bounded: a record may hold 1 MB)
        self.read_ahead = read_ahead or 2 * mapping.batch_size
        self.pending: list[dict[str, Any]] = []  # read from the shard, not yet checkpointed
        # with several lanes, batches finish out of shard order: the checkpoint is the last record before which
        # every record read has finished
        self._lock = threading.Lock()
        self._read_order: collections.deque[str] = collections.deque()
        self._finished: set[str] = set()

    def _iterator(self) -> str:
        checkpoint = self.stats.checkpoints.get(self.shard_id)
        if checkpoint:
            kwargs: dict[str, Any] = {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": checkpoint,
            }
        else:
            kwargs = {"ShardIteratorType": self.mapping.starting_position}
        response = self.kinesis.get_shard_iterator(
            StreamName=self.mapping.stream_name, ShardId=self.shard_id, **kwargs
        )
        return str(response["ShardIterator"])

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                reader = _ReadAhead(
                    self.kinesis, self._iterator(), self.stop, self.idle_sleep, self.read_ahead
                )
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("cannot open a shard iterator on %s", self.shard_id)
                self.stop.wait(0.5)
                continue
            try:
                self._serve(reader)
            except Exception as exc:  # the poller must survive a hiccup of the local services
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("kinesis poller error on %s", self.shard_id)
                self.stop.wait(0.5)
            finally:
                reader.close()
                self.pending.clear()  # read again from the checkpoint

    def _serve(self, reader: _ReadAhead) -> None:
        if self.mapping.parallelization_factor > 1:
            self._serve_lanes(reader)
        else:
            self._serve_one(reader)

    def _serve_lanes(self, reader: _ReadAhead) -> None:
        """ParallelizationFactor N: the shard's records go to N lanes by a hash of their partition key, each
        batched and delivered by its own thread, as Lambda does: a partition key's records stay in order."""
        with self._lock:
            self._read_order.clear()
            self._finished.clear()
        lanes = [_Lane() for _ in range(self.mapping.parallelization_factor)]
        for number, lane in enumerate(lanes):
            lane.thread = threading.Thread(
                target=self._run_lane,
                args=(lane,),
                name=f"kinesis-{self.shard_id}-lane-{number}",
                daemon=True,
            )
            lane.thread.start()
        try:
            while not self.stop.is_set():
                if sum(len(lane.pending) for lane in lanes) >= self.read_ahead:
                    self.stop.wait(0.01)
                    continue
                taken = reader.take(self.idle_sleep)
                if not taken:
                    continue
                with self._lock:
                    self._read_order.extend(r["SequenceNumber"] for r in taken)
                for record in taken:
                    lane = lanes[zlib.crc32(record["PartitionKey"].encode()) % len(lanes)]
                    with lane.changed:
                        lane.pending.append(record)
                        lane.changed.notify()
        finally:
            for lane in lanes:
                with lane.changed:
                    lane.closed = True
                    lane.changed.notify()
            for lane in lanes:
                assert lane.thread is not None
                lane.thread.join(timeout=60)

    def _run_lane(self, lane: _Lane) -> None:
        while not self.stop.is_set():
            with lane.changed:
                if lane.closed:
                    return
                if not lane.pending:
                    lane.changed.wait(self.idle_sleep)
                    continue
                count = self._batch_length(lane.pending)
                full = count < len(lane.pending) or count >= self.mapping.batch_size
                waited = time.time() - _epoch(lane.pending[0].get("ApproximateArrivalTimestamp"))
                if not full and waited < self.mapping.window_s:
                    lane.changed.wait(self.mapping.window_s - waited)
                    continue
                batch = lane.pending[:count]
            try:
                self._deliver(batch)
            except Exception as exc:  # the lane must survive a hiccup of the local services: it tries again
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("kinesis poller error on %s", self.shard_id)
                self.stop.wait(0.5)
                continue
            with lane.changed:
                del lane.pending[: len(batch)]

    def _serve_one(self, reader: _ReadAhead) -> None:
        """Gather a batch (batch size, 6 MB payload, or the window since its first record, whichever comes
        first) and deliver it, while the reader already fetches what follows, as Lambda's pollers do."""
        while not self.stop.is_set():
            if len(self.pending) < self.read_ahead:  # what has been read meanwhile tops the batch up
                self.pending.extend(reader.take(0.0))
            count = self._batch_length(self.pending)
            full = count < len(self.pending) or count >= self.mapping.batch_size
            # the window runs from when the batch's first record reached the stream: a backlog is not held
            waited = (
                time.time() - _epoch(self.pending[0].get("ApproximateArrivalTimestamp"))
                if self.pending
                else 0.0
            )
            if self.pending and (full or waited >= self.mapping.window_s):
                batch = self.pending[:count]
                self._deliver(batch)
                del self.pending[: len(batch)]
                continue
            timeout = self.idle_sleep if not self.pending else max(0.0, self.mapping.window_s - waited)
            self.pending.extend(reader.take(timeout))

    def _batch_length(self, pending: list[dict[str, Any]]) -> int:
        """How many pending records the next batch holds: at most the batch size and what fits in one
        invocation's payload (6 MB; a record larger than that alone still goes, alone)."""
        size = 0
        count = 0
        for record in pending[: self.mapping.batch_size]:
            size += _EVENT_BYTES_PER_RECORD + _base64_size(record["Data"])
            if count and size > self.mapping.max_payload_bytes:
                break
            count += 1
        return count

    def _checkpoint(self, done: list[dict[str, Any]]) -> None:
        """`done` (a batch's head) is finished: move the shard's checkpoint past every record finished in order."""
        if self.mapping.parallelization_factor == 1:
            self.stats.checkpoints[self.shard_id] = done[-1]["SequenceNumber"]
            return
        with self._lock:
            self._finished.update(r["SequenceNumber"] for r in done)
            last = None
            while self._read_order and self._read_order[0] in self._finished:
                last = self._read_order.popleft()
                self._finished.discard(last)
            if last is not None:
                self.stats.checkpoints[self.shard_id] = last

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)

    def _deliver(self, batch: list[dict[str, Any]], attempts_used: int = 0) -> None:
        """Deliver `batch` until every record is processed, or its retries or age run out (then the on-failure
        destination hears of it and the shard moves on). With retries and age at -1 (Lambda's defaults) a
        batch that keeps failing holds the shard until it succeeds: nothing behind it is skipped."""
        attempts = attempts_used
        while batch and not self.stop.is_set():
            expired = self._expired(batch)
            if expired:
                self._to_destination(batch[:expired], None, "RecordAgeExceeded", attempts)
                self._checkpoint(batch[:expired])
                batch = batch[expired:]
                continue
            event = kinesis_event(batch, self.shard_id, self.mapping.stream_arn, self.region)
            result = self.invoke(self.mapping.function, event)
            self._count(invocations=1)
            failed_from = self._first_failure(batch, result)
            if failed_from is None:
                self._count(records=len(batch))
                self._checkpoint(batch)
                return
            done, batch = batch[:failed_from], batch[failed_from:]
            self._count(records=len(done))
            if done:
                self._checkpoint(done)
            if not result.ok:
                self.stats.last_error = f"{result.error_type}: {result.error_message}"
                if self.mapping.bisect_on_error and len(batch) > 1:
                    # splitting a batch does not count against the retry quota (as on Lambda)
                    self._count(bisects=1)
                    half = len(batch) // 2
                    self._deliver(batch[:half], attempts)
                    self._deliver(batch[half:], attempts)
                    return
            if self.mapping.max_retries >= 0 and attempts >= self.mapping.max_retries:
                self._to_destination(batch, result, "RetryAttemptsExhausted", attempts)
                self._checkpoint(batch)
                return
            attempts += 1
            self._count(retries=1)
            self.stop.wait(min(0.05 * 2 ** min(attempts, 10), 2.0))

    def _expired(self, batch: list[dict[str, Any]]) -> int:
        """How many records at the head of `batch` are older than MaximumRecordAgeInSeconds."""
        if self.mapping.max_record_age_s < 0:
            return 0
        oldest_allowed = time.time() - self.mapping.max_record_age_s
        count = 0
        for record in batch:
            if _epoch(record.get("ApproximateArrivalTimestamp")) >= oldest_allowed:
                break
            count += 1
        return count

    def _first_failure(self, batch: list[dict[str, Any]], result: InvokeResult) -> int | None:
        """Index of the first record to deliver again, or None when the whole batch is done."""
        if not result.ok:
            return 0
        if not self.mapping.report_item_failures:
            return None
        payload = result.payload
        if payload is None or payload == {}:
            return None
        failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
        if failures is None:
            return None
        if not isinstance(failures, list):
            return 0
        if not failures:
            return None
        positions = {r["SequenceNumber"]: i for i, r in enumerate(batch)}
        indices = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in positions:
                return 0  # an unknown or empty identifier fails the whole batch, as Lambda does
            indices.append(positions[identifier])
        return min(indices)

    def _to_destination(
        self, batch: list[dict[str, Any]], result: InvokeResult | None, condition: str, attempts: int
    ) -> None:
        self._count(sent_to_destination=len(batch))
        log.warning(
            "%d records of %s sent to the on-failure destination (%s)", len(batch), self.shard_id, condition
        )
        if not self.mapping.on_failure_queue_url:
            return
        message = {
            "requestContext": {
                "requestId": result.request_id if result else "",
                "functionArn": f"arn:aws:lambda:{self.region}:123456789012:function:{self.mapping.function}",
                "condition": condition,
                "approximateInvokeCount": attempts + 1 if result else attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": None if result is None or result.ok else "Unhandled",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "KinesisBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": batch[0]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": datetime.fromtimestamp(
                    _epoch(batch[0].get("ApproximateArrivalTimestamp")), UTC
                ).isoformat(),
                "approximateArrivalOfLastRecord": datetime.fromtimestamp(
                    _epoch(batch[-1].get("ApproximateArrivalTimestamp")), UTC
                ).isoformat(),
                "batchSize": len(batch),
                "streamArn": self.mapping.stream_arn,
            },
        }
        self.sqs.send_message(QueueUrl=self.mapping.on_failure_queue_url, MessageBody=json.dumps(message))


def sqs_event(messages: list[dict[str, Any]], mapping: SqsMapping, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsPoller:
    """Receives from one queue and invokes the function; failed messages return after the visibility timeout,
    and the queue's redrive policy moves them to its dead-letter queue."""

    def __init__(
        self,
        sqs: Any,
        invoke: Invoke,
        mapping: SqsMapping,
        region: str,
        stop: threading.Event,
        stats: MappingStats,
        long_poll_s: int = 1,
    ) -> None:
        self.sqs, self.invoke, self.mapping, self.region, self.stop, self.stats = (
            sqs,
            invoke,
            mapping,
            region,
            stop,
            stats,
        )
        # an empty queue is asked again after this long poll (Lambda's pollers wait 20 s; 1 s keeps a stop of
        # the local cloud prompt), rather than ten times a second, each a request to moto
        self.long_poll_s = long_poll_s

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                messages = self._receive()
                if not messages:
                    continue
                result = self.invoke(self.mapping.function, sqs_event(messages, self.mapping, self.region))
                self.stats.invocations += 1
                failed = self._failed_ids(messages, result)
                done = [m for m in messages if m["MessageId"] not in failed]
                self.stats.records += len(done)
                if failed:
                    self.stats.retries += len(failed)
                    if not result.ok:
                        self.stats.last_error = f"{result.error_type}: {result.error_message}"
                for chunk in range(0, len(done), 10):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[chunk : chunk + 10])
                    ]
                    self.sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("sqs poller error")
                self.stop.wait(0.5)

    def _receive(self) -> list[dict[str, Any]]:
        """A batch: long polls (as Lambda's pollers do) until a first message comes, then what else arrives
        within the batching window, up to the batch size."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.mapping.window_s
        while len(messages) < self.mapping.batch_size and not self.stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self.long_poll_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = response.get("Messages", [])
            messages.extend(got)
            if not got:
                if messages and time.monotonic() >= deadline:
                    break
                if messages or not self.long_poll_s:
                    self.stop.wait(0.1)
        return messages

    def _failed_ids(self, messages: list[dict[str, Any]], result: InvokeResult) -> set[str]:
        every = {m["MessageId"] for m in messages}
        if not result.ok:
            return every
        if not self.mapping.report_item_failures or not isinstance(result.payload, dict):
            return set()
        failures = result.payload.get("batchItemFailures") or []
        ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
        return every if ids - every else {i for i in ids if isinstance(i, str)}
