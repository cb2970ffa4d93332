"""Lambda entry point (container image): training and day-store jobs from the train jobs queue (partial batch
responses), or one job given directly (`sam local invoke -e events/train/refit.json`)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast import aws
from closecast.config import JobsConfig, cached
from closecast.db.client import data_api
from closecast_ml.runner import Services, handle

logger = Logger()


@cache
def services() -> Services:
    config = cached(JobsConfig)
    return Services(data_api(config), aws.client("s3"), config)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, services(), ("train", "store_day"))
