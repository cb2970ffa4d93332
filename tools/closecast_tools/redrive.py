"""`closecast redrive`: store the stream records that reached the ingest mapping's on-failure queue.

When a Kinesis mapping gives up on a batch (a finite MaximumRetryAttempts or MaximumRecordAgeInSeconds), Lambda
sends only a description of it to the on-failure destination: the shard and the first and last sequence
numbers (`KinesisBatchInfo`). Redrive reads each such message, re-reads that range from the stream
(GetShardIterator AT_SEQUENCE_NUMBER, GetRecords up to the last sequence number), invokes the ingest function
with the same Kinesis event Lambda would send, and deletes the message only when every record of the range was
stored or quarantined. The ingest function is idempotent, so redriving a range twice changes nothing. A range
that no longer lies in the stream (past its retention) is reported, and its message kept.

    closecast redrive                              # the local cloud (`closecast up` must be running)
    closecast redrive --aws --stack closecast      # a deployed stack (queue and function from its outputs)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from closecast_tools.local.poller import kinesis_event
from closecast_tools.local.runtime import InvokeResult

Invoke = Callable[[dict[str, Any]], InvokeResult]

MAX_EVENT_DATA_BYTES = 4 * 1024 * 1024  # base64 in JSON: stays under Lambda's 6 MB synchronous payload


class RangeUnreadable(Exception):
    """The range described by a message cannot be read back whole from the stream."""


@dataclass(frozen=True)
class FailedRange:
    """What the on-failure destination says about one batch (Lambda's `KinesisBatchInfo`)."""

    shard_id: str
    start: str
    end: str
    size: int
    stream_arn: str

    @property
    def stream_name(self) -> str:
        return self.stream_arn.rsplit("/", 1)[-1]

    @classmethod
    def from_message(cls, body: str) -> FailedRange:
        try:
            info = json.loads(body)["KinesisBatchInfo"]
            return cls(
                shard_id=str(info["shardId"]),
                start=str(info["startSequenceNumber"]),
                end=str(info["endSequenceNumber"]),
                size=int(info["batchSize"]),
                stream_arn=str(info["streamArn"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a Kinesis on-failure record: {exc}") from exc


def read_range(kinesis: Any, failed: FailedRange) -> list[dict[str, Any]]:
    """Every record of the range, in order, or RangeUnreadable."""
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=failed.stream_name,
            ShardId=failed.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=failed.start,
        )["ShardIterator"]
    except Exception as exc:
        raise RangeUnreadable(f"cannot open shard {failed.shard_id} at {failed.start}: {exc}") from exc
    records: list[dict[str, Any]] = []
    end = int(failed.end)
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        for record in response["Records"]:
            if int(record["SequenceNumber"]) > end:
                return _checked(records, failed)
            records.append(record)
        if records and int(records[-1]["SequenceNumber"]) == end:
            return _checked(records, failed)
        if not response["Records"] and not response.get("MillisBehindLatest"):
            break  # at the tip of the shard without reaching the end
        iterator = response.get("NextShardIterator")
    return _checked(records, failed)


def _checked(records: list[dict[str, Any]], failed: FailedRange) -> list[dict[str, Any]]:
    if not records or records[0]["SequenceNumber"] != failed.start:
        raise RangeUnreadable(
            f"the range from {failed.start} is no longer in shard {failed.shard_id} (past the retention?)"
        )
    if records[-1]["SequenceNumber"] != failed.end:
        raise RangeUnreadable(f"shard {failed.shard_id} ends before {failed.end}")
    if len(records) != failed.size:
        raise RangeUnreadable(f"read {len(records)} records where the message describes {failed.size}")
    return records


def chunks(records: list[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of at most `batch_size` records and MAX_EVENT_DATA_BYTES of data, in order."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for record in records:
        length = len(record["Data"])
        if chunk and (len(chunk) >= batch_size or size + length > MAX_EVENT_DATA_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += length
    if chunk:
        yield chunk


def _failed_from(batch: list[dict[str, Any]], result: InvokeResult) -> int | None:
    """Index of the first record to send again (as the Kinesis mapping reads a partial batch response)."""
    if not result.ok:
        return 0
    payload = result.payload
    failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
    if not failures:
        return None
    positions = {r["SequenceNumber"]: i for i, r in enumerate(batch)}
    indices = [positions.get(f.get("itemIdentifier") if isinstance(f, dict) else None) for f in failures]
    if any(i is None for i in indices):
        return 0
    return min(i for i in indices if i is not None)


@dataclass
class RedriveSummary:
    messages: int = 0
    ranges_stored: int = 0
    records_stored: int = 0
    kept: list[str] = field(default_factory=list)  # why each kept message stays on the queue

    @property
    def ok(self) -> bool:
        return not self.kept

    def line(self) -> str:
        text = (
            f"redrive: {self.messages} message(s); {self.ranges_stored} range(s), {self.records_stored} "
            f"record(s) stored or quarantined; {len(self.kept)} kept on the queue"
        )
        return text + "".join(f"\n  kept: {reason}" for reason in self.kept)


@dataclass
class Redriver:
    kinesis: Any
    sqs: Any
    queue_url: str
    invoke: Invoke
    region: str
    batch_size: int = 100
    attempts: int = 5
    visibility_timeout_s: int = 900
    sleep: Callable[[float], None] = time.sleep

    def run(self) -> RedriveSummary:
        summary = RedriveSummary()
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=self.visibility_timeout_s,  # hidden from a concurrent redrive meanwhile
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                return summary
            for message in messages:
                summary.messages += 1
                reason = self._redrive(message, summary)
                if reason is None:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    summary.kept.append(f"message {message['MessageId']}: {reason}")

    def _redrive(self, message: dict[str, Any], summary: RedriveSummary) -> str | None:
        """Store the message's range; None when done, else why the message must stay."""
        try:
            failed = FailedRange.from_message(message["Body"])
            records = read_range(self.kinesis, failed)
        except (ValueError, RangeUnreadable) as exc:
            return str(exc)
        for batch in chunks(records, self.batch_size):
            reason = self._deliver(batch, failed)
            if reason is not None:
                return reason
        summary.ranges_stored += 1
        summary.records_stored += len(records)
        return None

    def _deliver(self, batch: list[dict[str, Any]], failed: FailedRange) -> str | None:
        for attempt in range(self.attempts):
            result = self.invoke(kinesis_event(batch, failed.shard_id, failed.stream_arn, self.region))
            failed_from = _failed_from(batch, result)
            if failed_from is None:
                return None
            batch = batch[failed_from:]
            if attempt + 1 < self.attempts:
                self.sleep(min(0.5 * 2**attempt, 10.0))
        error = "" if result.ok else f" ({result.error_type}: {result.error_message})"
        return f"{len(batch)} record(s) from {batch[0]['SequenceNumber']} still fail after {self.attempts} tries{error}"


# ----------------------------------------------------------------------------- the command


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redrive",
        help="store the stream records that reached the ingest mapping's on-failure queue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--local", dest="aws", action="store_false", help="the local cloud (default)")
    target.add_argument("--aws", dest="aws", action="store_true", help="AWS, with the usual credentials")
    parser.add_argument("--stack", help="--aws: the stack whose outputs name the queue and the function")
    parser.add_argument("--queue-url", help="the on-failure queue (default: from the stack or local cloud)")
    parser.add_argument("--function", help="the ingest function (default: from the stack or the template)")
    parser.add_argument("--region", help="AWS region")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="local cloud state (default .closecast/)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="records per invocation")
    parser.add_argument("--attempts", type=int, default=5, help="tries per batch before a message is kept")
    parser.set_defaults(func=cmd_redrive, aws=False)


def cmd_redrive(args: argparse.Namespace) -> int:
    try:
        summary = _run_aws(args) if args.aws else _run_local(args)
    except (ValueError, RuntimeError) as exc:
        print(f"closecast redrive: {exc}", file=sys.stderr)
        return 2
    print(summary.line(), flush=True)
    return 0 if summary.ok else 1


def _run_aws(args: argparse.Namespace) -> RedriveSummary:
    import boto3

    session = boto3.session.Session(region_name=args.region)
    queue_url, function = args.queue_url, args.function
    if args.stack:
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        queue_url = queue_url or outputs.get("IngestFailureQueueUrl")
        function = function or outputs.get("IngestFunctionName")
    if not queue_url or not function:
        raise ValueError("--aws needs --stack NAME, or --queue-url and --function")
    lam = session.client("lambda")

    def invoke(event: dict[str, Any]) -> InvokeResult:
        response = lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else str(payload)
            return InvokeResult(False, None, response["FunctionError"], message)
        return InvokeResult(True, payload)

    return Redriver(
        kinesis=session.client("kinesis"),
        sqs=session.client("sqs"),
        queue_url=queue_url,
        invoke=invoke,
        region=session.region_name or "us-east-1",
        batch_size=args.batch_size or 100,
        attempts=args.attempts,
    ).run()


def _run_local(args: argparse.Namespace) -> RedriveSummary:
    from closecast_tools.local.cloud import client, repo_root
    from closecast_tools.local.commands import local_runtime, running_state
    from closecast_tools.local.template import Template

    root = repo_root()
    state_dir = (args.state_dir or root / ".closecast").resolve()
    state = running_state(state_dir)
    if state is None:
        raise RuntimeError(f"no local cloud is running for {state_dir}: start it with `closecast up`")
    template = Template(root / "template.yaml")
    queue_url = args.queue_url or state.get("ingest_failure_queue_url")
    function, batch_size = _mapping_of(template, state, queue_url)
    function = args.function or function
    runtime = local_runtime(template, root, state, state_dir, [function])
    try:
        return Redriver(
            kinesis=client("kinesis", state["aws_endpoint_url"]),
            sqs=client("sqs", state["aws_endpoint_url"]),
            queue_url=str(queue_url),
            invoke=lambda event: runtime.invoke(function, event),
            region=str(state["region"]),
            batch_size=args.batch_size or batch_size,
            attempts=args.attempts,
        ).run()
    finally:
        runtime.close()


def _mapping_of(template: Any, state: dict[str, Any], queue_url: Any) -> tuple[str, int]:
    """(function, batch size) of the Kinesis mapping whose on-failure destination is `queue_url`."""
    from closecast_tools.local.cloud import LocalResources, template_parameters
    from closecast_tools.local.template import resolve

    resources = LocalResources(refs=state["resources"]["refs"], attrs=state["resources"]["attrs"])
    parameters = template_parameters(template, state.get("parameter_overrides") or {})
    for mapping in template.event_source_mappings():
        if mapping.kind != "Kinesis":
            continue
        props = resolve(dict(mapping.properties), resources.lookup, parameters)
        destination = (props.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
        urls = [a.get("QueueUrl") for a in resources.attrs.values() if a.get("Arn") == destination]
        if queue_url in urls:
            return mapping.function, int(props.get("BatchSize", 100))
    raise ValueError(f"no Kinesis mapping of the template sends its failures to {queue_url}")
