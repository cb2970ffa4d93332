"""/predictions/: the live predictions the stream consumer makes for every snapshot (one per row and model)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from closecast.api.common import READ_ERRORS, PageEnvelope, context_api, documented
from closecast.api.types import INT8_MAX, MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.market.schema import LAST_SECOND, MAX_DATE_ID, MAX_STOCK_ID
from closecast.resources.predictions import sql
from closecast.resources.predictions.schemas import PredictionRecord

router = Router()

LIST_PARAMS = {"page", "page_size", "date_id", "seconds_in_bucket", "stock_id", "model_id", "partial"}


@router.get("/predictions", summary="List live predictions", responses=documented(200, *READ_ERRORS))
@router.get("/predictions/", include_in_schema=False)
def list_predictions(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    date_id: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
    seconds_in_bucket: Annotated[int | None, Query(ge=0, le=LAST_SECOND, multiple_of=10)] = None,
    stock_id: Annotated[int | None, Query(ge=0, le=MAX_STOCK_ID)] = None,
    model_id: Annotated[int | None, Query(ge=1, le=INT8_MAX)] = None,
    partial: Annotated[bool | None, Query()] = None,
) -> PageEnvelope[PredictionRecord]:
    result = sql.list_predictions(
        context_api(router),
        PageRequest(page, page_size),
        date_id=date_id,
        seconds_in_bucket=seconds_in_bucket,
        stock_id=stock_id,
        model_id=model_id,
        partial=partial,
    )
    return PageEnvelope[PredictionRecord].model_validate(result.envelope())
