"""/healthcheck/: is the database reachable? (No sign-in; says nothing else about the stack.)"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from closecast.api.common import context_api
from closecast.db.errors import DataApiError
from closecast.errors import ConfigurationError
from closecast.resources.healthcheck import sql
from closecast.resources.healthcheck.schemas import Health, Unhealthy

logger = Logger(child=True)
router = Router()

RESPONSES: dict[int, Any] = {
    200: {"description": "The database answered", "content": {"application/json": {"model": Health}}},
    503: {
        "description": "The database did not answer (paused and waking, or down)",
        "content": {"application/json": {"model": Unhealthy}},
    },
}


@router.get("/healthcheck", summary="Is the database reachable?", responses=RESPONSES)
@router.get("/healthcheck/", include_in_schema=False)
def healthcheck() -> Response[Any]:
    try:
        sql.ping(context_api(router).with_retry_budget(max_attempts=3, max_retry_seconds=5.0))
    except (DataApiError, ConfigurationError) as exc:
        logger.warning("database unreachable", extra={"error": str(exc)})
        body = Unhealthy(status="unavailable", database="unreachable", message="the database did not answer")
        return Response(
            status_code=503,
            content_type=content_types.APPLICATION_JSON,
            body=body.model_dump_json(),
            headers={"Retry-After": "5"},
        )
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=Health(status="ok", database="reachable").model_dump_json(),
    )
