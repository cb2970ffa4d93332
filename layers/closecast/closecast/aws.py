"""boto3 clients, created once per process and handed to adapters (so tests can pass their own).

Endpoints come from boto3's own configuration: on AWS the defaults, locally `AWS_ENDPOINT_URL` and
`AWS_ENDPOINT_URL_<SERVICE>` set by the local cloud. Nothing here knows about the local cloud.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_DEFAULT = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)
# The Data API client retries itself, knowing which statements are safe to send again (closecast.db.data_api);
# botocore retrying underneath would resend non-idempotent writes after a 500 and multiply the waiting.
_RDS_DATA = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=60)


@cache
def client(service: str) -> Any:
    config = _RDS_DATA if service == "rds-data" else _DEFAULT
    return boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]
