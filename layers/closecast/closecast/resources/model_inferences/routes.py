"""/model-inferences/: one record per (model, day) of predictions (the predictions file lives in S3)."""

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
from closecast.market.schema import MAX_DATE_ID
from closecast.resources.model_inferences import sql
from closecast.resources.model_inferences.schemas import ModelInferenceCreate, ModelInferenceRecord
from closecast.resources.models.sql import model_exists

router = Router()

LIST_PARAMS = {"page", "page_size", "model_id", "date_id"}


def record(row: dict[str, Any], bucket: str) -> ModelInferenceRecord:
    return ModelInferenceRecord.model_validate(
        {**row, "predictions": bucket_key(row["predictions_uri"], bucket)}
    )


@router.get("/model-inferences", summary="List model inferences", responses=documented(200, *READ_ERRORS))
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
    bucket = context_bucket(router)
    envelope = result.envelope()
    envelope["data"] = [record(row, bucket) for row in result.data]
    return PageEnvelope[ModelInferenceRecord].model_validate(envelope)


@router.post(
    "/model-inferences",
    summary="Record a day's predictions (predictions_uri, or the original's predictions key)",
    responses=documented(201, *WRITE_ERRORS, model=ModelInferenceRecord, description="Recorded"),
)
@router.post("/model-inferences/", include_in_schema=False)
def create_model_inference(body: Annotated[ModelInferenceCreate, Body()]) -> Response[Any]:
    api = context_api(router)
    bucket = context_bucket(router)
    uri = same_or_either(
        body.predictions_uri, bucket_uri(body.predictions, bucket), "predictions_uri", "predictions"
    )
    if not model_exists(api, body.model_id):
        raise InvalidInput(f"model {body.model_id} does not exist", field="model_id")
    row = sql.insert_model_inference(
        api,
        {
            "model_id": body.model_id,
            "date_id": body.date_id,
            "predictions_uri": uri,
            "n_rows": body.n_rows,
            "mae": body.mae,
        },
    )
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=record(row, bucket).model_dump_json(),
    )
