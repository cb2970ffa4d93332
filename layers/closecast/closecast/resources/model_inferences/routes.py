"""/model-inferences/: one record per (model, day) of predictions (the predictions file lives in S3)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import PageEnvelope, context_api, context_config
from closecast.api.locations import require_in_bucket
from closecast.api.types import INT8_MAX, MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput
from closecast.market.schema import MAX_DATE_ID
from closecast.resources.model_inferences import sql
from closecast.resources.model_inferences.schemas import ModelInferenceCreate, ModelInferenceRecord
from closecast.resources.models.sql import model_exists

router = Router()

LIST_PARAMS = {"page", "page_size", "model_id", "date_id"}


@router.get("/model-inferences", summary="List model inferences")
@router.get("/model-inferences/", include_in_schema=False)
def list_model_inferences(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    model_id: Annotated[int | None, Query(ge=1, le=INT8_MAX)] = None,
    date_id: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
) -> PageEnvelope[ModelInferenceRecord]:
    result = sql.list_model_inferences(
        context_api(router), PageRequest(page, page_size), model_id=model_id, date_id=date_id
    )
    return PageEnvelope[ModelInferenceRecord].model_validate(result.envelope())


@router.post("/model-inferences", summary="Record a day's predictions")
@router.post("/model-inferences/", include_in_schema=False)
def create_model_inference(body: Annotated[ModelInferenceCreate, Body()]) -> Response[Any]:
    require_in_bucket(context_config(router).bucket, {"predictions_uri": body.predictions_uri})
    api = context_api(router)
    if not model_exists(api, body.model_id):
        raise InvalidInput(f"model {body.model_id} does not exist", field="model_id")
    record = sql.insert_model_inference(api, body.model_dump())
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=ModelInferenceRecord.model_validate(record).model_dump_json(),
    )
