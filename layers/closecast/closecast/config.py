"""Function configuration: read once from the environment that template.yaml sets, validated, then passed down.

Logic and data access never read `os.environ`; handlers call `load(SomeConfig)` at their entry point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from closecast.errors import ConfigurationError

__all__ = [
    "ApiConfig",
    "ConfigurationError",
    "DatabaseConfig",
    "IngestConfig",
    "MigrateConfig",
    "cached",
    "load",
]


class _EnvModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class DatabaseConfig(_EnvModel):
    cluster_arn: str = Field(alias="DB_CLUSTER_ARN", pattern=r"^arn:aws[\w-]*:rds:")
    secret_arn: str = Field(alias="DB_SECRET_ARN", pattern=r"^arn:aws[\w-]*:secretsmanager:")
    database: str = Field(alias="DB_NAME", min_length=1)


class ApiConfig(DatabaseConfig):
    """The REST resource functions. `authorization`: `cognito-groups` (the default, as deployed: the caller's
    token groups are checked) or `none` (only `closecast up --no-auth` sets it). `bucket`: the stack's bucket,
    where every artifact and predictions location must lie (the functions that write such locations)."""

    authorization: Literal["cognito-groups", "none"] = Field(
        default="cognito-groups", alias="API_AUTHORIZATION"
    )
    bucket: str | None = Field(default=None, alias="BUCKET_NAME", min_length=3)


class MigrateConfig(DatabaseConfig):
    """The migrate function: the master secret (DB_SECRET_ARN) and the secrets of the roles it sets up."""

    reader_secret_arn: str = Field(alias="DB_READER_SECRET_ARN", pattern=r"^arn:aws[\w-]*:secretsmanager:")
    writer_secret_arn: str = Field(alias="DB_WRITER_SECRET_ARN", pattern=r"^arn:aws[\w-]*:secretsmanager:")


class IngestConfig(DatabaseConfig):
    bucket: str = Field(alias="BUCKET_NAME", min_length=3)
    quarantine_prefix: str = Field(default="quarantine/", alias="QUARANTINE_PREFIX")


C = TypeVar("C", bound=_EnvModel)


def load(model: type[C], environ: Mapping[str, str] | None = None) -> C:
    """Parse `model` from the environment; a missing or invalid variable raises ConfigurationError naming it."""
    source = os.environ if environ is None else environ
    try:
        return model.model_validate(dict(source))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid environment for {model.__name__}: {problems}") from exc


@cache
def cached(model: type[C]) -> C:
    """`load(model)` once per process (a warm Lambda keeps it)."""
    return load(model)


class JobsApiConfig(ApiConfig):
    """The /jobs/ resource (and the original's /train-model/, /inference-model/): where jobs are queued."""

    train_queue_url: str = Field(alias="TRAIN_JOBS_QUEUE_URL", min_length=1)
    inference_queue_url: str = Field(alias="INFERENCE_JOBS_QUEUE_URL", min_length=1)


class JobsConfig(DatabaseConfig):
    """The train and inference functions (container images)."""

    bucket: str = Field(alias="BUCKET_NAME", min_length=3)
    days_prefix: str = Field(default="days/", alias="DAYS_PREFIX")
    models_prefix: str = Field(default="models/", alias="MODELS_PREFIX")
    predictions_prefix: str = Field(default="predictions/", alias="PREDICTIONS_PREFIX")
    # a job `running` for longer than this (its function died) may be claimed again by a redelivered message
    stale_job_seconds: int = Field(default=960, alias="STALE_JOB_SECONDS", ge=1)
