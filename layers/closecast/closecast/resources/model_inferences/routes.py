"""/model-inferences/: one record per (model, day) of predictions (the predictions file lives in S3)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from closecast import aws
from closecast.api.common import (
    READ_ERRORS,
    WRITE_ERRORS,
    PageEnvelope,
    context_api,
    context_bucket,
    documented,
)
from closecast.api.locations import require_in_bucket
from closecast.api.types import INT8_MAX, MAX_PAGE, bucket_key, bucket_uri, same_or_either
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput, NotFound
from closecast.market.schema import INT4_MAX, MAX_DATE_ID
from closecast.resources.model_inferences import predictions, sql
from closecast.resources.model_inferences.schemas import (
    ModelInferenceCreate,
    ModelInferenceRecord,
    PredictionRow,
)
from closecast.resources.models.sql import model_exists

router = Router()

LIST_PARAMS = {"page", "page_size", "model_id", "date_id"}
PREDICTION_PARAMS = {"page", "page_size", "stock_id", "seconds_in_bucket"}


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
    require_in_bucket(
        context_bucket(router),
        {
            "predictions_uri": body.predictions_uri,
            "predictions": bucket_uri(body.predictions, context_bucket(router)),
        },
    )
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


@router.get(
    "/model-inferences/<inference_id>/predictions",
    summary="A day's predictions, row by row (from its predictions file)",
    responses=documented(200, 404, *READ_ERRORS),
)
def list_predictions(
    inference_id: Annotated[int, Path(ge=1, le=INT8_MAX)],
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 1000,
    stock_id: Annotated[int | None, Query(ge=0, le=INT4_MAX)] = None,
    seconds_in_bucket: Annotated[int | None, Query(ge=0, le=540)] = None,
) -> PageEnvelope[PredictionRow]:
    unknown = sorted(set(router.current_event.query_string_parameters or {}) - PREDICTION_PARAMS)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s): {', '.join(unknown)}", field=unknown[0], location="query"
        )
    record = sql.get_inference(context_api(router), inference_id)
    if record is None:
        raise NotFound(f"model inference {inference_id} does not exist")
    bucket = context_bucket(router)
    if not str(record["predictions_uri"]).startswith(f"s3://{bucket}/"):
        raise NotFound(f"model inference {inference_id}'s predictions are not in this stack's bucket")
    rows = predictions.select(
        predictions.read(aws.client("s3"), record["predictions_uri"]),
        stock_id=stock_id,
        seconds_in_bucket=seconds_in_bucket,
    )
    start = (page - 1) * page_size
    return PageEnvelope[PredictionRow].model_validate(
        {
            "total_results": len(rows),
            "total_pages": math.ceil(len(rows) / page_size),
            "page": page,
            "page_size": page_size,
            "data": rows[start : start + page_size],
        }
    )
