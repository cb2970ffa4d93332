"""/models/: trained model records (the files themselves live in S3)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import (
    READ_ERRORS,
    WRITE_ERRORS,
    PageEnvelope,
    context_api,
    context_bucket,
    documented,
)
from closecast.api.types import INT8_MAX, MAX_PAGE, bucket_key, bucket_uri, same_or_either
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput
from closecast.resources.models import sql
from closecast.resources.models.schemas import ORIGINAL_FEATURE_SET, ModelCreate, ModelRecord

router = Router()

LIST_PARAMS = {"page", "page_size", "name", "model_name", "model_id"}
NameQuery = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


def record(row: dict[str, Any], bucket: str) -> ModelRecord:
    """A stored row with the original's names beside closecast's."""
    return ModelRecord.model_validate(
        {
            **row,
            "model_id": row["id"],
            "model_name": row["name"],
            "model_artifact_path": bucket_key(row["artifact_uri"], bucket),
            "date_id": row["last_trained_date_id"],
        }
    )


@router.get("/models", summary="List models", responses=documented(200, *READ_ERRORS))
@router.get("/models/", include_in_schema=False)
def list_models(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    name: NameQuery = None,
    model_name: NameQuery = None,
    model_id: Annotated[int | None, Query(ge=1, le=INT8_MAX)] = None,
) -> PageEnvelope[ModelRecord]:
    result = sql.list_models(
        context_api(router), PageRequest(page, page_size), name=name, model_name=model_name, model_id=model_id
    )
    bucket = context_bucket(router)
    envelope = result.envelope()
    envelope["data"] = [record(row, bucket) for row in result.data]
    return PageEnvelope[ModelRecord].model_validate(envelope)


@router.post(
    "/models",
    summary="Register a model (closecast's body or the original's: model_name, model_artifact_path, date_id)",
    responses=documented(201, *WRITE_ERRORS, 409, model=ModelRecord, description="Model registered"),
)
@router.post("/models/", include_in_schema=False)
def create_model(body: Annotated[ModelCreate, Body()]) -> Response[Any]:
    api = context_api(router)
    bucket = context_bucket(router)
    name = same_or_either(body.name, body.model_name, "name", "model_name")
    artifact = same_or_either(
        body.artifact_uri,
        bucket_uri(body.model_artifact_path, bucket),
        "artifact_uri",
        "model_artifact_path",
    )
    trained = same_or_either(body.last_trained_date_id, body.date_id, "last_trained_date_id", "date_id", True)
    if body.parent_id is not None and not sql.model_exists(api, body.parent_id):
        raise InvalidInput(f"model {body.parent_id} does not exist", field="parent_id")
    row = sql.insert_model(
        api,
        {
            "name": name,
            "version": body.version,
            "artifact_uri": artifact,
            "metadata_uri": body.metadata_uri,
            "parent_id": body.parent_id,
            "last_trained_date_id": trained,
            "feature_set": body.feature_set or ORIGINAL_FEATURE_SET,
            "params": body.params,
            "metrics": body.metrics,
        },
    )
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=record(row, bucket).model_dump_json(),
    )
