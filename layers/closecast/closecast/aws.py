"""boto3 clients, created once per process and handed to adapters (so tests can pass their own).

Endpoints come from boto3's own configuration: on AWS the defaults, locally `AWS_ENDPOINT_URL` and
`AWS_ENDPOINT_URL_<SERVICE>` set by the local cloud. Nothing here knows about the local cloud.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]
