"""/stock_data/: list auction snapshots with filters and pages; POST rows (upsert on the natural key)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import READ_ERRORS, WRITE_ERRORS, PageEnvelope, context_api, documented
from closecast.api.types import MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput
from closecast.market.schema import MAX_DATE_ID, MAX_STOCK_ID, TRAIN_TYPE_PATTERN
from closecast.resources.stock_data import sql
from closecast.resources.stock_data.schemas import (
    Snapshot,
    StockDataCreate,
    StockDataCreated,
    duplicate_rows,
)

router = Router()

LIST_PARAMS = {
    "page",
    "page_size",
    "date_id",
    "date_id_from",
    "date_id_to",
    "start_date_id",
    "end_date_id",
    "stock_id",
    "seconds_in_bucket",
    "has_target",
    "train_type",
}
DateIdQuery = Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)]


def _highest(*values: int | None) -> int | None:
    given = [v for v in values if v is not None]
    return max(given) if given else None


def _lowest(*values: int | None) -> int | None:
    given = [v for v in values if v is not None]
    return min(given) if given else None


@router.get("/stock_data", summary="List auction snapshots", responses=documented(200, *READ_ERRORS))
@router.get("/stock_data/", include_in_schema=False)
def list_stock_data(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    date_id: DateIdQuery = None,
    date_id_from: DateIdQuery = None,
    date_id_to: DateIdQuery = None,
    start_date_id: Annotated[
        int | None, Query(ge=0, le=MAX_DATE_ID, description="first date_id (inclusive); as date_id_from")
    ] = None,
    end_date_id: Annotated[
        int | None, Query(ge=0, le=MAX_DATE_ID, description="last date_id (inclusive); as date_id_to")
    ] = None,
    stock_id: Annotated[int | None, Query(ge=0, le=MAX_STOCK_ID)] = None,
    seconds_in_bucket: Annotated[int | None, Query(ge=0, le=540, multiple_of=10)] = None,
    has_target: Annotated[bool | None, Query()] = None,
    train_type: Annotated[str | None, Query(min_length=1, max_length=32, pattern=TRAIN_TYPE_PATTERN)] = None,
) -> PageEnvelope[Snapshot]:
    where = sql.StockDataFilter(
        date_id=date_id,
        date_id_from=_highest(date_id_from, start_date_id),
        date_id_to=_lowest(date_id_to, end_date_id),
        stock_id=stock_id,
        seconds_in_bucket=seconds_in_bucket,
        has_target=has_target,
        train_type=train_type,
    )
    result = sql.list_rows(context_api(router), where, PageRequest(page, page_size))
    return PageEnvelope[Snapshot].model_validate(result.envelope())


@router.post(
    "/stock_data",
    summary="Create or replace auction snapshots (`commit: false` validates only)",
    responses={
        **documented(201, *WRITE_ERRORS, model=StockDataCreated, description="Rows stored"),
        **documented(200, model=StockDataCreated, description="commit was false: rows valid, nothing stored"),
    },
)
@router.post("/stock_data/", include_in_schema=False)
def create_stock_data(body: Annotated[StockDataCreate, Body()]) -> Response[Any]:
    repeats = duplicate_rows(body.data)
    if repeats:
        raise InvalidInput(
            f"{len(repeats)} row(s) repeat the key (date_id, seconds_in_bucket, stock_id) of an earlier row",
            details=[
                {"field": f"data.{index}", "location": "body", "message": f"same key as data.{first}"}
                for index, first in repeats
            ],
        )
    if body.commit:  # as on the stream: the date mappings of new date_ids are created with the rows
        config = router.context.get("config")
        rows = sql.upsert(context_api(router), body.data, date_of=config.date_of if config else None)
    else:
        rows = len(body.data)
    return Response(
        status_code=201 if body.commit else 200,
        content_type=content_types.APPLICATION_JSON,
        body=StockDataCreated(rows=rows, committed=body.commit).model_dump_json(),
    )
