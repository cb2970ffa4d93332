"""Fixtures for the Data API integration tests: one embedded PostgreSQL and one local Data API endpoint
for the whole session, a real boto3 ``rds-data`` client pointed at it, and the schema migrated."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from closecast.db.data_api import DataApi
from closecast.db.migrations import apply_migrations
from closecast_tools.local.data_api import LocalDataApi
from closecast_tools.local.postgres import EmbeddedPostgres, start_embedded

CLUSTER_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:closecast-local"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:closecast-local-db-AbCdEf"
DATABASE = "closecast"


def rds_data_client(url: str) -> Any:
    """A plain boto3 client; botocore's own retries off so each test sees every answer."""
    return boto3.client(
        "rds-data",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )


@dataclass
class Wire:
    """Byte counts of every request and response that went over HTTP."""

    requests: list[tuple[str, int]] = field(default_factory=list)
    responses: list[tuple[str, int, int]] = field(default_factory=list)  # (operation, status, bytes)

    def clear(self) -> None:
        self.requests.clear()
        self.responses.clear()


def watch(client: Any) -> Wire:
    """Record raw sizes with botocore event hooks (the body as sent, the body as received)."""
    wire = Wire()

    def on_send(request: Any, **_: Any) -> None:
        body = request.body or b""
        wire.requests.append((request.url.rsplit("/", 1)[-1], len(body)))

    def on_call(http_response: Any, model: Any, **_: Any) -> None:
        wire.responses.append((model.name, http_response.status_code, len(http_response.content)))

    client.meta.events.register("before-send.rds-data", on_send)
    client.meta.events.register("after-call.rds-data", on_call)
    return wire


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: concurrent pytest sessions prune old basetemp directories, which would
    # delete the data directory under a running server.
    root = Path(tempfile.mkdtemp(prefix="closecast-data-api-"))
    server = start_embedded(root / "pgdata")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dsn(postgres: EmbeddedPostgres) -> str:
    return postgres.ensure_database(DATABASE)


@pytest.fixture(scope="session")
def endpoint(dsn: str) -> Iterator[LocalDataApi]:
    with LocalDataApi(dsn, cluster_arn=CLUSTER_ARN, secret_arn=SECRET_ARN, database=DATABASE) as local:
        yield local


@pytest.fixture(scope="session")
def session_api(endpoint: LocalDataApi) -> DataApi:
    api = DataApi(rds_data_client(endpoint.url), CLUSTER_ARN, SECRET_ARN, DATABASE)
    apply_migrations(api)
    return api


@pytest.fixture
def client(endpoint: LocalDataApi, session_api: DataApi) -> Any:
    """A fresh boto3 client (migrations already applied)."""
    return rds_data_client(endpoint.url)


@pytest.fixture
def wire(client: Any) -> Wire:
    return watch(client)


@pytest.fixture
def api(client: Any) -> DataApi:
    return DataApi(client, CLUSTER_ARN, SECRET_ARN, DATABASE, sleep=lambda _s: None)


@dataclass(frozen=True)
class Target:
    cluster_arn: str = CLUSTER_ARN
    secret_arn: str = SECRET_ARN
    database: str = DATABASE

    def request(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for a raw boto3 call against the local endpoint."""
        return {
            "resourceArn": self.cluster_arn,
            "secretArn": self.secret_arn,
            "database": self.database,
            **extra,
        }


@pytest.fixture(scope="session")
def target() -> Target:
    return Target()


@pytest.fixture(scope="session")
def make_client() -> Callable[[str], Any]:
    return rds_data_client


@pytest.fixture(scope="session")
def make_wire() -> Callable[[Any], Wire]:
    return watch
