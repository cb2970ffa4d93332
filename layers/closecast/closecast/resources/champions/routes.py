"""/champions/, /promotions/ and PUT /models/{model_id}/champion: which model of each name serves the live
predictions, and every promotion decision with its evidence."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from closecast.api.common import READ_ERRORS, WRITE_ERRORS, PageEnvelope, context_api, documented
from closecast.api.types import INT8_MAX, MAX_PAGE
from closecast.db.listing import PageRequest
from closecast.errors import NotFound
from closecast.resources.champions import sql
from closecast.resources.champions.schemas import ChampionRecord, ChampionRequest, PromotionRecord
from closecast.resources.models.sql import get_model

router = Router()

ALLOWED_QUERY = {
    "/champions": {"page", "page_size"},
    "/promotions": {"page", "page_size", "name", "model_id", "decision"},
}


@router.put(
    "/models/<model_id>/champion",
    summary="Make a model the champion of its name",
    responses=documented(200, 404, *WRITE_ERRORS),
)
def put_champion(
    model_id: Annotated[int, Path(ge=1, le=INT8_MAX)],
    body: Annotated[ChampionRequest | None, Body()] = None,
) -> PromotionRecord:
    api = context_api(router)
    model = get_model(api, model_id)
    if model is None:
        raise NotFound(f"model {model_id} does not exist")
    evidence = {"reason": body.reason if body and body.reason else "set by hand"}
    record = sql.promote(
        api, name=str(model["name"]), model_id=model_id, decided_by="manual", evidence=evidence
    )
    assert record is not None  # without check_previous the promotion always happens
    return PromotionRecord.model_validate(record)


@router.get(
    "/champions", summary="List the champion of each model name", responses=documented(200, *READ_ERRORS)
)
@router.get("/champions/", include_in_schema=False)
def list_champions(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> PageEnvelope[ChampionRecord]:
    result = sql.list_champions(context_api(router), PageRequest(page, page_size))
    return PageEnvelope[ChampionRecord].model_validate(result.envelope())


@router.get(
    "/promotions",
    summary="List promotion decisions (newest first) with their evidence",
    responses=documented(200, *READ_ERRORS),
)
@router.get("/promotions/", include_in_schema=False)
def list_promotions(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    name: Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    model_id: Annotated[int | None, Query(ge=1, le=INT8_MAX)] = None,
    decision: Annotated[Literal["promoted", "kept"] | None, Query()] = None,
) -> PageEnvelope[PromotionRecord]:
    result = sql.list_promotions(
        context_api(router), PageRequest(page, page_size), name=name, model_id=model_id, decision=decision
    )
    return PageEnvelope[PromotionRecord].model_validate(result.envelope())
