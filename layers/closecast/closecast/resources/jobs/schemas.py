"""What a job asks for: the parameters of each kind, validated once where the job is created and again where
it runs (the train and inference functions parse `job.params` with the same models)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from closecast.market.schema import INT4_MAX, MAX_DATE_ID

JobKind = Literal["train", "inference", "store_day", "daily", "promote"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
KINDS: tuple[str, ...] = ("train", "inference", "store_day", "daily", "promote")
STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed")

DateId = Annotated[int, Field(ge=0, le=MAX_DATE_ID)]
ModelId = Annotated[int, Field(ge=1, le=2**63 - 1)]
ModelName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
FeatureSet = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_]*$")]
ClientToken = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateSelection(_Params):
    """Exactly one of: `date_id`; `start_date_id` + `end_date_id` (inclusive); `up_to_date_id` (all days up to
    and including it)."""

    date_id: DateId | None = None
    start_date_id: DateId | None = None
    end_date_id: DateId | None = None
    up_to_date_id: DateId | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> DateSelection:
        if (self.start_date_id is None) != (self.end_date_id is None):
            missing = "end_date_id" if self.end_date_id is None else "start_date_id"
            raise ValueError(f"{missing} is required with {_other(missing)}")
        if (
            self.start_date_id is not None
            and self.end_date_id is not None
            and self.start_date_id > self.end_date_id
        ):
            raise ValueError("start_date_id must not be after end_date_id")
        chosen = [
            name
            for name, value in (
                ("date_id", self.date_id),
                ("start_date_id", self.start_date_id),
                ("up_to_date_id", self.up_to_date_id),
            )
            if value is not None
        ]
        if not chosen:
            raise ValueError("give date_id, start_date_id + end_date_id, or up_to_date_id")
        if len(chosen) > 1:
            raise ValueError(
                f"give only one of date_id, start_date_id + end_date_id, up_to_date_id: {chosen}"
            )
        return self

    def date_range(self) -> tuple[int, int]:
        if self.date_id is not None:
            return self.date_id, self.date_id
        if self.start_date_id is not None and self.end_date_id is not None:
            return self.start_date_id, self.end_date_id
        assert self.up_to_date_id is not None
        return 0, self.up_to_date_id


def _other(name: str) -> str:
    return "start_date_id" if name == "end_date_id" else "end_date_id"


class TrainParams(DateSelection):
    """Train a model: a refit on the selected days (no parent), or the daily update of `parent_id` with the
    selected (new) days. `feature_set` defaults to the parent's, or to "full" for a refit."""

    model_name: ModelName
    parent_id: ModelId | None = None
    feature_set: FeatureSet | None = None
    valid_days: int | None = Field(default=None, ge=1, le=1000)


class InferenceParams(_Params):
    """Predict every row of `date_id` with `model_id` (from that day's own rows; targets are not needed)."""

    model_id: ModelId
    date_id: DateId
    center: bool = True  # as the live predictions are: each second's index-weighted mean is zero


class StoreDayParams(DateSelection):
    """Write the complete days of the selection to the day store (missing or stale ones only)."""


class DailyParams(_Params):
    """The daily chain of one day (started by the ingest when the day's targets are complete, or by the
    schedule): store the day, update `model_name`'s champion with it, evaluate, promote or keep, predict the
    next day. Each step is a job of its own."""

    date_id: DateId
    model_name: ModelName


class PromoteParams(_Params):
    """The chain's evaluate-and-promote step: `candidate_id` (the daily update of `champion_id`, or None when
    the update kept its parent) becomes champion only if it is no worse than the champion on the recent days."""

    model_name: ModelName
    date_id: DateId
    champion_id: ModelId
    candidate_id: ModelId | None = None
    train_job_id: str | None = Field(default=None, max_length=64)


PARAMS_OF_KIND: dict[str, type[_Params]] = {
    "train": TrainParams,
    "inference": InferenceParams,
    "store_day": StoreDayParams,
    "daily": DailyParams,
    "promote": PromoteParams,
}


class TrainJobCreate(TrainParams):
    kind: Literal["train"]
    client_token: ClientToken | None = None


class InferenceJobCreate(InferenceParams):
    kind: Literal["inference"]
    client_token: ClientToken | None = None


class StoreDayJobCreate(StoreDayParams):
    kind: Literal["store_day"]
    client_token: ClientToken | None = None


JobCreate = Annotated[TrainJobCreate | InferenceJobCreate | StoreDayJobCreate, Field(discriminator="kind")]


def split_create(
    body: TrainJobCreate | InferenceJobCreate | StoreDayJobCreate,
) -> tuple[str, dict[str, Any], str | None]:
    """(kind, params as stored, client token) of a POST /jobs/ body."""
    params = body.model_dump(exclude={"kind", "client_token"}, exclude_none=True)
    return body.kind, params, body.client_token


class JobRecord(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    params: dict[str, Any]
    client_token: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = Field(ge=0, le=INT4_MAX)
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    updated_at: dt.datetime


# ------------------------------------------------------------------ the original training service's calls


class TrainModelRequest(BaseModel):
    """`POST /train-model/` of the original training service: `model_id` is the parent model to update (the
    original always fine-tuned one; here it may be left out for a refit). `date_id`, or `start_date_id` +
    `end_date_id`; a `date_id` sent together with a range (as the original's example does) must lie inside it
    and the range is used."""

    model_config = ConfigDict(extra="forbid")

    model_id: ModelId | None = None
    model_name: ModelName
    date_id: DateId | None = None
    start_date_id: DateId | None = None
    end_date_id: DateId | None = None

    @model_validator(mode="after")
    def _dates(self) -> TrainModelRequest:
        if (self.start_date_id is None) != (self.end_date_id is None):
            missing = "end_date_id" if self.end_date_id is None else "start_date_id"
            raise ValueError(f"{missing} is required with {_other(missing)}")
        if self.start_date_id is not None and self.end_date_id is not None:
            if self.start_date_id > self.end_date_id:
                raise ValueError("start_date_id must not be after end_date_id")
            if self.date_id is not None and not self.start_date_id <= self.date_id <= self.end_date_id:
                raise ValueError("date_id lies outside start_date_id..end_date_id")
        elif self.date_id is None:
            raise ValueError("give date_id, or start_date_id + end_date_id")
        return self

    def to_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model_name": self.model_name}
        if self.model_id is not None:
            params["parent_id"] = self.model_id
        if self.start_date_id is not None:
            params.update(start_date_id=self.start_date_id, end_date_id=self.end_date_id)
        else:
            params["date_id"] = self.date_id
        return TrainParams.model_validate(params).model_dump(exclude_none=True)


class InferenceModelRequest(BaseModel):
    """`POST /inference-model/` of the original training service."""

    model_config = ConfigDict(extra="forbid")

    model_id: ModelId
    pred_date_id: DateId

    def to_params(self) -> dict[str, Any]:
        return InferenceParams(model_id=self.model_id, date_id=self.pred_date_id).model_dump()


class StartedMessage(BaseModel):
    """The original's answer (`message`), with the job that now carries the work."""

    message: str
    job: JobRecord
