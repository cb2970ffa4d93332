"""/date_mappings/: date_id <-> trading date."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import PageEnvelope, context_api
from closecast.api.types import MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.market.schema import MAX_DATE_ID
from closecast.resources.date_mappings import sql
from closecast.resources.date_mappings.schemas import DateMapping, DateMappingsCreate

router = Router()

LIST_PARAMS = {"page", "page_size", "date_id", "date_from", "date_to"}


@router.get("/date_mappings", summary="List date mappings")
@router.get("/date_mappings/", include_in_schema=False)
def list_date_mappings(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    date_id: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
    date_from: Annotated[dt.date | None, Query()] = None,
    date_to: Annotated[dt.date | None, Query()] = None,
) -> PageEnvelope[DateMapping]:
    result = sql.list_date_mappings(
        context_api(router),
        PageRequest(page, page_size),
        date_id=date_id,
        date_from=date_from,
        date_to=date_to,
    )
    return PageEnvelope[DateMapping].model_validate(result.envelope())


@router.post("/date_mappings", summary="Create or correct date mappings")
@router.post("/date_mappings/", include_in_schema=False)
def create_date_mappings(body: Annotated[DateMappingsCreate, Body()]) -> Response[Any]:
    n = sql.upsert_date_mappings(context_api(router), [(m.date_id, m.trading_date) for m in body.data])
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=f'{{"rows": {n}}}')
