"""Lambda entry point (EventBridge schedule after the close): the daily chain's fallback sweep. Starts the chain
of every complete day that has none, re-sends the message of a chain left queued, lists incomplete days."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast import aws, chain
from closecast.config import ChainConfig, cached
from closecast.db.client import data_api

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = cached(ChainConfig)
    if not config.chain_queue_url:
        raise ValueError("CHAIN_JOBS_QUEUE_URL is not set")
    report = chain.sweep(
        data_api(config), aws.client("sqs"), config.chain_queue_url, model_name=config.model_name
    )
    logger.info("daily chain sweep", extra=report)
    return report
