"""/date_mappings/: date_id <-> trading date."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from closecast.api.common import READ_ERRORS, WRITE_ERRORS, PageEnvelope, context_api, documented
from closecast.api.types import MAX_PAGE, IsoDate
from closecast.db.listing import PageRequest
from closecast.errors import InvalidInput
from closecast.market.schema import MAX_DATE_ID
from closecast.resources.date_mappings import sql
from closecast.resources.date_mappings.schemas import DateMapping, DateMappingsCreate, DateMappingsCreated

router = Router()

LIST_PARAMS = {"page", "page_size", "date_id", "date", "date_from", "date_to"}


@router.get("/date_mappings", summary="List date mappings", responses=documented(200, *READ_ERRORS))
@router.get("/date_mappings/", include_in_schema=False)
def list_date_mappings(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    date_id: Annotated[int | None, Query(ge=0, le=MAX_DATE_ID)] = None,
    date: Annotated[IsoDate | None, Query(description="the trading date")] = None,
    date_from: Annotated[IsoDate | None, Query()] = None,
    date_to: Annotated[IsoDate | None, Query()] = None,
) -> PageEnvelope[DateMapping]:
    result = sql.list_date_mappings(
        context_api(router),
        PageRequest(page, page_size),
        date_id=date_id,
        date=date,
        date_from=date_from,
        date_to=date_to,
    )
    return PageEnvelope[DateMapping].model_validate(result.envelope())


def _repeats(values: list[Any], name: str) -> list[dict[str, Any]]:
    first: dict[Any, int] = {}
    details = []
    for index, value in enumerate(values):
        if value in first:
            details.append(
                {
                    "field": f"data.{index}",
                    "location": "body",
                    "message": f"same {name} as data.{first[value]}",
                }
            )
        else:
            first[value] = index
    return details


@router.post(
    "/date_mappings",
    summary="Create or correct date mappings",
    responses=documented(201, *WRITE_ERRORS, 409, model=DateMappingsCreated, description="Mappings stored"),
)
@router.post("/date_mappings/", include_in_schema=False)
def create_date_mappings(body: Annotated[DateMappingsCreate, Body()]) -> Response[Any]:
    pairs = [(m.date_id, m.day) for m in body.data]
    repeats = _repeats([d for d, _ in pairs], "date_id") + _repeats([t for _, t in pairs], "trading date")
    if repeats:
        raise InvalidInput("rows repeat a date_id or a trading date of an earlier row", details=repeats)
    n = sql.upsert_date_mappings(context_api(router), pairs)
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=DateMappingsCreated(rows=n).model_dump_json(),
    )
