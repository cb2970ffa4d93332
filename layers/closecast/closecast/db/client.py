"""The one place that wires a `DataApi` to the function's configuration and the process's rds-data client."""

from __future__ import annotations

from closecast import aws
from closecast.config import DatabaseConfig
from closecast.db.data_api import DataApi


def data_api(config: DatabaseConfig) -> DataApi:
    """A Data API client for `config`'s cluster, secret and database over the shared boto3 client."""
    return DataApi(aws.client("rds-data"), config.cluster_arn, config.secret_arn, config.database)
