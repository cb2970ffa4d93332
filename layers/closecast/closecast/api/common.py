"""What every REST resource shares: the resolver, page parameters, the page envelope and error responses.

Every error leaves here as JSON: `{"message": ..., "errors": [{"field", "location", "message"}]}` with a 4xx
for the caller's faults and 5xx (no internals) for ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel, Field

from closecast.config import ApiConfig, ConfigurationError
from closecast.db.data_api import DataApi
from closecast.db.errors import DataApiError, DatabaseError, ResponseTooLarge, TransientDatabaseError
from closecast.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable

logger = Logger(child=True)

T = TypeVar("T")


class PageEnvelope(BaseModel, Generic[T]):
    total_results: int = Field(ge=0)
    total_pages: int = Field(ge=0)
    page: int = Field(ge=1)
    page_size: int = Field(ge=1)
    data: list[T]


class ErrorDetail(BaseModel):
    field: str | None
    location: str
    message: str


class ErrorBody(BaseModel):
    message: str
    errors: list[ErrorDetail] = []


def error_response(
    status: HTTPStatus,
    message: str,
    errors: Iterable[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> Response[str]:
    body = ErrorBody(message=message, errors=[ErrorDetail(**e) for e in errors])
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(),
        headers=headers,
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        location = loc[0] if loc else "request"
        field = ".".join(loc[1:]) or None
        if err.get("type") == "json_invalid":  # loc carries a character position, not a field
            field = None
            message = f"body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
        else:
            message = str(err.get("msg", "invalid"))
        details.append({"field": field, "location": location, "message": message})
    return details


def _refused_field(exc: DatabaseError) -> str | None:
    """The column a refused value belongs to, from the constraint's name (`<table>_<column>_check`)."""
    constraint = exc.constraint or ""
    match = re.fullmatch(r"[a-z]+(?:_[a-z]+)*?_((?:[a-z]+_)*[a-z]+)_(?:check|key|fkey)", constraint)
    return match.group(1) if match else None


def new_resolver(allowed_query: dict[str, set[str]] | None = None) -> APIGatewayHttpResolver:
    """A resolver with validation on and closecast's error mapping. `allowed_query` maps a path to the query
    parameters it takes, so that an unknown one (a typo such as `?dateid=`) is refused instead of ignored."""
    app = APIGatewayHttpResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY, "request validation failed", _validation_details(exc)
        )

    @app.exception_handler(RequestUnsupportedContentType)
    def _media(exc: RequestUnsupportedContentType) -> Response[str]:
        detail = {
            "field": "content-type",
            "location": "header",
            "message": "send the body as application/json",
        }
        return error_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported content type", [detail])

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(exc: UnicodeDecodeError) -> Response[str]:
        detail = {"field": None, "location": "body", "message": f"body is not UTF-8 text ({exc.reason})"}
        return error_response(HTTPStatus.BAD_REQUEST, "invalid body encoding", [detail])

    @app.exception_handler(InvalidInput)
    def _bad(exc: InvalidInput) -> Response[str]:
        return error_response(HTTPStatus.BAD_REQUEST, exc.message, [exc.detail()])

    @app.exception_handler(NotFound)
    def _missing(exc: NotFound) -> Response[str]:
        return error_response(HTTPStatus.NOT_FOUND, str(exc))

    @app.exception_handler(Conflict)
    def _conflict(exc: Conflict) -> Response[str]:
        return error_response(HTTPStatus.CONFLICT, str(exc))

    @app.exception_handler(ServiceUnavailable)
    def _unavailable(exc: ServiceUnavailable) -> Response[str]:
        logger.warning("service unavailable", extra={"error": str(exc.__cause__ or exc)})
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(TransientDatabaseError)
    def _busy(exc: TransientDatabaseError) -> Response[str]:
        logger.warning("database not available", extra={"error": str(exc)})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "database is waking up or busy; retry shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ResponseTooLarge)
    def _too_large(exc: ResponseTooLarge) -> Response[str]:
        detail = {
            "field": "page_size",
            "location": "query",
            "message": "the page exceeds 1 MiB; ask for fewer rows",
        }
        return error_response(HTTPStatus.BAD_REQUEST, "page too large", [detail])

    @app.exception_handler(DatabaseError)
    def _refused(exc: DatabaseError) -> Response[str]:
        if not exc.is_data_error:
            logger.exception("database error")
            return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        detail = {"field": _refused_field(exc), "location": "body", "message": exc.pg_message}
        return error_response(HTTPStatus.BAD_REQUEST, "value refused by the database", [detail])

    @app.exception_handler(DataApiError)
    def _db(exc: DataApiError) -> Response[str]:
        logger.exception("database error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    @app.exception_handler(ConfigurationError)
    def _config(exc: ConfigurationError) -> Response[str]:
        logger.exception("configuration error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    if allowed_query:

        def _reject_unknown_query(app_: APIGatewayHttpResolver, next_middleware: Callable[..., Any]) -> Any:
            path = app_.current_event.path.rstrip("/") or "/"
            allowed = allowed_query.get(path)
            if allowed is not None:
                unknown = sorted(set(app_.current_event.query_string_parameters or {}) - allowed)
                if unknown:
                    return error_response(
                        HTTPStatus.BAD_REQUEST,
                        f"unknown query parameter(s): {', '.join(unknown)}",
                        [
                            {"field": name, "location": "query", "message": "unknown parameter"}
                            for name in unknown
                        ],
                    )
            return next_middleware(app_)

        app.use([_reject_unknown_query])

    return app


def context_config(router: Any) -> ApiConfig:
    """The function's configuration the handler put in the resolver's context."""
    config: ApiConfig = router.context["config"]
    return config


def context_api(router: Any) -> DataApi:
    """The Data API the handler put in the resolver's context for this request."""
    api: DataApi = router.context["api"]
    return api
