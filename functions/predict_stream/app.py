"""Lambda entry point (container image): the second consumer of the snapshot stream. Predicts every snapshot
with the champion model, stores the predictions (GET /predictions/) and puts them on the predictions stream.

A batch that cannot be stored or published (database or stream unavailable) is reported back from its first
record, so Kinesis delivers it again; predictions are upserted per (row, model), so that changes nothing."""

from __future__ import annotations

import gc
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast import aws
from closecast.config import PredictStreamConfig, cached
from closecast.db.client import data_api
from closecast.ingest import records_from_event
from closecast_ml.live import ChampionCache, LivePredictor, NoUsableModel, handle_batch, s3_loader

logger = Logger()

# The sandbox's init is done: what it loaded (modules, pydantic schemas, boto3's service models) lives as long as
# the sandbox does. Frozen, it is no longer rescanned by the collections that a batch's tens of thousands of
# freshly parsed rows set off.
gc.freeze()


@cache
def predictor() -> LivePredictor:
    config = cached(PredictStreamConfig)
    api = data_api(config)
    return LivePredictor(api, ChampionCache(api, config.model_name, s3_loader(aws.client("s3"))))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = cached(PredictStreamConfig)
    records = records_from_event(event)
    if not records:
        return {"batchItemFailures": []}
    try:
        result = handle_batch(
            predictor(),
            records,
            kinesis=aws.client("kinesis") if config.output_stream else None,
            output_stream=config.output_stream or None,
        )
    except NoUsableModel as exc:
        # no model can predict: the records are delivered again (and again, until a usable champion exists or
        # the mapping's retry limit sends them to the on-failure destination)
        logger.error("no usable model", extra={"reason": str(exc)})
        return {"batchItemFailures": [{"itemIdentifier": records[0].sequence_number}]}
    except Exception:
        logger.exception("batch not predicted; Kinesis delivers it again")
        return {"batchItemFailures": [{"itemIdentifier": records[0].sequence_number}]}
    logger.info(
        "batch predicted",
        extra={
            "records": len(records),
            "snapshots": result.snapshots,
            "predictions": result.predictions,
            "model_id": result.model_id,
            "published": result.published,
            "note": result.note,
        },
    )
    return {"batchItemFailures": []}
