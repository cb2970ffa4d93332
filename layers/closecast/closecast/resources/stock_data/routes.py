"""/stock_data/: list auction snapshots with filters and pages; POST rows (upsert on the natural key)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import PageEnvelope, context_api
from closecast.api.types import MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.market.schema import MAX_DATE_ID, MAX_STOCK_ID
from closecast.resources.stock_data import sql
from closecast.resources.stock_data.schemas import Snapshot, StockDataCreate, StockDataCreated

router = Router()

LIST_PARAMS = {
    "page",
    "page_size",
    "date_id",
    "date_id_from",
    "date_id_to",
    "stock_id",
    "seconds_in_bucket",
    "has_target",
}


@router.get("/stock_data", summary="List auction snapshots")
@router.get("/stock_data/", include_in_schema=False)
def list_stock_data(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    date_id: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
    date_id_from: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
    date_id_to: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
    stock_id: Annotated[int | None, Query(ge=0, le=MAX_STOCK_ID)] = None,
    seconds_in_bucket: Annotated[int | None, Query(ge=0, le=540, multiple_of=10)] = None,
    has_target: Annotated[bool | None, Query()] = None,
) -> PageEnvelope[Snapshot]:
    result = sql.list_rows(
        context_api(router),
        sql.StockDataFilter(date_id, date_id_from, date_id_to, stock_id, seconds_in_bucket, has_target),
        PageRequest(page, page_size),
    )
    return PageEnvelope[Snapshot].model_validate(result.envelope())


@router.post("/stock_data", summary="Create or replace auction snapshots")
@router.post("/stock_data/", include_in_schema=False)
def create_stock_data(body: Annotated[StockDataCreate, Body()]) -> Response[Any]:
    rows = sql.upsert(context_api(router), body.data)
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=StockDataCreated(rows=rows).model_dump_json(),
    )
