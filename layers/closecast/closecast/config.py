"""Function configuration: read once from the environment that template.yaml sets, validated, then passed down.

Logic and data access never read `os.environ`; handlers call `load(SomeConfig)` at their entry point.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from functools import cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from closecast.errors import ConfigurationError
from closecast.trading_calendar import xnas

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
    # how long one call keeps retrying while the database is unavailable or resuming (~15 s from auto-pause)
    data_api_retry_seconds: float = Field(default=30.0, alias="DATA_API_RETRY_SECONDS", ge=0, le=600)


class CalendarConfig(_EnvModel):
    """Where date_id 0 falls: date mappings of new date_ids are the XNAS sessions counted from it."""

    first_trading_date: dt.date = Field(default=dt.date(2023, 1, 3), alias="FIRST_TRADING_DATE")

    @field_validator("first_trading_date")
    @classmethod
    def _a_session(cls, value: dt.date) -> dt.date:
        if not xnas().is_session(value):
            raise ValueError(f"{value.isoformat()} is not an XNAS trading session")
        return value

    def date_of(self, date_id: int) -> dt.date | None:
        """The trading date of `date_id` (None past the calendar's range)."""
        return xnas().date_of(self.first_trading_date, date_id)


class ApiConfig(DatabaseConfig, CalendarConfig):
    """The REST resource functions. `authorization`: `cognito-groups` (the default, as deployed: the caller's
    token groups are checked) or `none` (only `closecast up --no-auth` sets it). `bucket`: the stack's bucket,
    where every artifact and predictions location must lie; it also turns a key in it (the original clients'
    `model_artifact_path`, `predictions`) into an S3 URI and back."""

    authorization: Literal["cognito-groups", "none"] = Field(
        default="cognito-groups", alias="API_AUTHORIZATION"
    )
    bucket: str = Field(alias="BUCKET_NAME", min_length=3)


class MigrateConfig(DatabaseConfig):
    """The migrate function: the master secret (DB_SECRET_ARN) and the secrets of the roles it sets up."""

    reader_secret_arn: str = Field(alias="DB_READER_SECRET_ARN", pattern=r"^arn:aws[\w-]*:secretsmanager:")
    writer_secret_arn: str = Field(alias="DB_WRITER_SECRET_ARN", pattern=r"^arn:aws[\w-]*:secretsmanager:")


class IngestConfig(DatabaseConfig, CalendarConfig):
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


class PredictStreamConfig(DatabaseConfig):
    """The streaming predictor (container image): whose champion predicts, and where predictions go out."""

    model_name: str = Field(default="closecast", alias="CHAMPION_MODEL_NAME", pattern=r"^[A-Za-z0-9_.-]+$")
    output_stream: str = Field(default="", alias="PREDICTIONS_STREAM_NAME")


class ChainConfig(DatabaseConfig):
    """Who starts the daily chain (the ingest when a day's targets are complete, the schedule as a fallback):
    where the chain's job goes, and whose champion it updates."""

    chain_queue_url: str = Field(default="", alias="CHAIN_JOBS_QUEUE_URL")
    model_name: str = Field(default="closecast", alias="CHAMPION_MODEL_NAME", pattern=r"^[A-Za-z0-9_.-]+$")
