"""Lambda entry point: Kinesis auction snapshots -> stock_data (partial batch responses)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast import aws, chain, ingest
from closecast.config import ChainConfig, IngestConfig, cached
from closecast.db.client import data_api

logger = Logger()
metrics = Metrics()
QUARANTINE_CONCURRENCY = 8


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = cached(IngestConfig)
    api = data_api(config)
    s3 = aws.client("s3")

    def store(entry: ingest.QuarantineEntry) -> str | None:
        key = entry.key(config.quarantine_prefix)
        try:
            body = json.dumps(entry.document()).encode()
            s3.put_object(Bucket=config.bucket, Key=key, Body=body, ContentType="application/json")
        except Exception:
            logger.exception("could not quarantine a record; it will be delivered again", extra={"key": key})
            return entry.record.sequence_number
        logger.warning("record quarantined", extra={"key": key, "reason": entry.reason})
        return None

    def quarantine(entries: Sequence[ingest.QuarantineEntry]) -> set[str]:
        with ThreadPoolExecutor(max_workers=QUARANTINE_CONCURRENCY) as pool:
            return {sequence for sequence in pool.map(store, entries) if sequence is not None}

    records = ingest.records_from_event(event)
    outcome = ingest.process_batch(api, records, quarantine, config.date_of)
    # a day is complete once its rows and its targets are all in, whichever comes last: batches of one shard run
    # side by side (ParallelizationFactor) and shards in parallel, so a day's targets may land before its last rows
    chain_dates = sorted(set(outcome.target_dates) | set(outcome.row_dates))
    if chain_dates:
        start_chains(api, chain_dates)
    quarantined = len({r.record.sequence_number for r in outcome.rejections})
    metrics.add_metric("RecordsReceived", MetricUnit.Count, len(records))
    metrics.add_metric("RowsWritten", MetricUnit.Count, outcome.rows_written)
    metrics.add_metric("TargetsRevealed", MetricUnit.Count, outcome.targets_revealed)
    metrics.add_metric("RowsQuarantined", MetricUnit.Count, len(outcome.rejections))
    metrics.add_metric("RecordsQuarantined", MetricUnit.Count, quarantined)
    metrics.add_metric("RecordsFailed", MetricUnit.Count, len(outcome.failed_sequence_numbers))
    logger.info(
        "batch processed",
        extra={
            "records": len(records),
            "rows": outcome.rows_written,
            "rejected": len(outcome.rejections),
            "failed": len(outcome.failed_sequence_numbers),
        },
    )
    return outcome.response()


def start_chains(api: ingest.DataApi, date_ids: Sequence[int]) -> None:
    """A day now complete (rows and targets) starts its daily chain. Never fails the batch: the schedule's
    sweep starts any chain this misses."""
    config = cached(ChainConfig)
    if not config.chain_queue_url:
        return
    try:
        started = chain.after_targets(
            api, aws.client("sqs"), config.chain_queue_url, date_ids, model_name=config.model_name
        )
    except Exception:
        logger.exception("could not start the daily chain; the schedule will", extra={"date_ids": date_ids})
        return
    for job in started:
        logger.info("daily chain started", extra={"job_id": job["id"], "params": job["params"]})
