"""Builds a Lambda handler for one REST resource: validated config, an injected Data API, one resolver, and the
caller's rights checked first (`closecast.api.auth`), before any parameter is read."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast.api import auth
from closecast.api.common import error_response, new_resolver, refuse_unreadable_body
from closecast.config import ApiConfig, ConfigurationError, cached
from closecast.db.client import data_api

logger = Logger()

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@lru_cache(maxsize=1)
def _context() -> dict[str, Any]:
    """What every request of this process shares: `api` (the Data API) and `config` (the ApiConfig). Tests
    replace this function to hand in a stubbed Data API."""
    config = cached(ApiConfig)
    return {"api": data_api(config), "config": config}


def _answer(response: Response[str]) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": "application/json"},
        "body": response.body,
    }


def http_handler(router: Router, allowed_query: dict[str, set[str]], *more: Router) -> Handler:
    """One resolver for `router` (and `more` routers served by the same function)."""
    app = new_resolver(allowed_query)
    for each in (router, *more):
        app.include_router(each)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            shared = _context()
        except ConfigurationError:
            logger.exception("invalid function configuration")
            return _answer(error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"))
        if shared["config"].authorization == "cognito-groups":
            refusal = auth.refusal(event)
            if refusal is not None:
                logger.info("request refused", extra={"right": refusal.right, "groups": refusal.has})
                return _answer(error_response(HTTPStatus.FORBIDDEN, refusal.message, [refusal.detail()]))
        refused = refuse_unreadable_body(event)
        if refused is not None:
            return _answer(refused)
        app.append_context(**shared)
        return app.resolve(event, context)

    return handler
