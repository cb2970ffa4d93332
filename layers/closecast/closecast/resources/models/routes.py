"""/models/: trained model records (the files themselves live in S3)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import PageEnvelope, context_api, context_config
from closecast.api.locations import require_in_bucket
from closecast.api.types import MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput
from closecast.resources.models import sql
from closecast.resources.models.schemas import ModelCreate, ModelRecord

router = Router()

LIST_PARAMS = {"page", "page_size", "name"}


@router.get("/models", summary="List models")
@router.get("/models/", include_in_schema=False)
def list_models(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    name: Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
) -> PageEnvelope[ModelRecord]:
    result = sql.list_models(context_api(router), PageRequest(page, page_size), name=name)
    return PageEnvelope[ModelRecord].model_validate(result.envelope())


@router.post("/models", summary="Register a model")
@router.post("/models/", include_in_schema=False)
def create_model(body: Annotated[ModelCreate, Body()]) -> Response[Any]:
    require_in_bucket(
        context_config(router).bucket, {"artifact_uri": body.artifact_uri, "metadata_uri": body.metadata_uri}
    )
    api = context_api(router)
    if body.parent_id is not None and not sql.model_exists(api, body.parent_id):
        raise InvalidInput(f"model {body.parent_id} does not exist", field="parent_id")
    record = sql.insert_model(api, body.model_dump())
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=ModelRecord.model_validate(record).model_dump_json(),
    )
