"""Lambda entry point: Kinesis auction snapshots -> stock_data (partial batch responses)."""

from __future__ import annotations

import gc
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast import aws, chain, ingest
from closecast.config import ChainConfig, IngestConfig, cached
from closecast.db.client import data_api
from closecast.quarantine import s3_quarantine

logger = Logger()
metrics = Metrics()

# The sandbox's init is done: what it loaded (modules, pydantic schemas, boto3's service models) lives as long as
# the sandbox does. Frozen, it is no longer rescanned by the collections that a batch's tens of thousands of
# freshly parsed rows set off.
gc.freeze()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = cached(IngestConfig)
    api = data_api(config)
    quarantine = s3_quarantine(aws.client("s3"), config.bucket, config.quarantine_prefix)
    records = ingest.records_from_event(event)
    outcome = ingest.process_batch(api, records, quarantine, config.date_of)
    # a day is complete once its rows and its targets are all in, whichever comes last: batches of one shard run
    # side by side (ParallelizationFactor) and shards in parallel, so a day's targets may land before its last rows
    chain_dates = sorted(set(outcome.target_dates) | set(outcome.row_dates))
    if chain_dates:
        chain.start_after_ingest(api, aws.client("sqs"), cached(ChainConfig), chain_dates)
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
