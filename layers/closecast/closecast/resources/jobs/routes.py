"""/jobs/: POST a training, inference or day-store job (202; a `client_token` makes a retry start nothing
twice), list and read them. Also the original training service's `POST /train-model/` and
`POST /inference-model/`, which create the same jobs."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from closecast import aws
from closecast.api.common import READ_ERRORS, WRITE_ERRORS, PageEnvelope, context_api, documented
from closecast.api.types import MAX_PAGE
from closecast.config import JobsApiConfig, cached
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput, NotFound
from closecast.resources.jobs import sql
from closecast.resources.jobs.queue import JobQueues, submit
from closecast.resources.jobs.schemas import (
    InferenceModelRequest,
    JobCreate,
    JobKind,
    JobRecord,
    JobStatus,
    StartedMessage,
    TrainModelRequest,
    split_create,
)

router = Router()

LIST_PARAMS = {"page", "page_size", "kind", "status"}
ALLOWED_QUERY = {"/jobs": LIST_PARAMS, "/train-model": set(), "/inference-model": set()}


@cache
def _queues() -> JobQueues:
    config = cached(JobsApiConfig)
    return JobQueues(aws.client("sqs"), config.train_queue_url, config.inference_queue_url)


def _accepted(body: str) -> Response[Any]:
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


@router.post(
    "/jobs",
    summary="Start a job (train, inference, store_day)",
    responses=documented(202, 409, *WRITE_ERRORS, model=JobRecord, description="Job queued"),
)
@router.post("/jobs/", include_in_schema=False)
def create_job(body: Annotated[JobCreate, Body()]) -> Response[Any]:
    kind, params, token = split_create(body)
    job = submit(context_api(router), _queues(), kind, params, token)
    return _accepted(JobRecord.model_validate(job).model_dump_json())


@router.get("/jobs", summary="List jobs, newest first", responses=documented(200, *READ_ERRORS))
@router.get("/jobs/", include_in_schema=False)
def list_jobs(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[JobKind | None, Query()] = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> PageEnvelope[JobRecord]:
    result = sql.list_jobs(context_api(router), PageRequest(page, page_size), kind=kind, status=status)
    return PageEnvelope[JobRecord].model_validate(result.envelope())


@router.get("/jobs/<job_id>", summary="One job", responses=documented(200, 404, *READ_ERRORS))
def get_job(job_id: Annotated[str, Path(min_length=1, max_length=64)]) -> JobRecord:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise InvalidInput(f"{job_id!r} is not a job id (a UUID)", field="job_id", location="path") from None
    job = sql.get(context_api(router), job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return JobRecord.model_validate(job)


@router.post(
    "/train-model",
    summary="Start training (the original training service's call)",
    responses=documented(202, *WRITE_ERRORS, model=StartedMessage, description="Job queued"),
)
@router.post("/train-model/", include_in_schema=False)
def train_model(body: Annotated[TrainModelRequest, Body()]) -> Response[Any]:
    job = submit(context_api(router), _queues(), "train", body.to_params(), None)
    message = StartedMessage(
        message=f"Training started for model {body.model_name}", job=JobRecord.model_validate(job)
    )
    return _accepted(message.model_dump_json())


@router.post(
    "/inference-model",
    summary="Start inference (the original training service's call)",
    responses=documented(202, *WRITE_ERRORS, model=StartedMessage, description="Job queued"),
)
@router.post("/inference-model/", include_in_schema=False)
def inference_model(body: Annotated[InferenceModelRequest, Body()]) -> Response[Any]:
    job = submit(context_api(router), _queues(), "inference", body.to_params(), None)
    message = StartedMessage(
        message=f"Inference started for model {body.model_id}", job=JobRecord.model_validate(job)
    )
    return _accepted(message.model_dump_json())
