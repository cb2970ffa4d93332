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
from closecast.api.common import error_response, new_resolver
from closecast.config import ApiConfig, ConfigurationError, cached
from closecast.db.client import data_api
from closecast.db.data_api import DataApi

logger = Logger()

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@lru_cache(maxsize=1)
def _data_api() -> DataApi:
    return data_api(cached(ApiConfig))


def _payload(response: Response[str]) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": "application/json"},
        "body": response.body,
    }


def http_handler(router: Router, allowed_query: dict[str, set[str]]) -> Handler:
    app = new_resolver(allowed_query)
    app.include_router(router)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            config = cached(ApiConfig)
            api = _data_api()
        except ConfigurationError:
            logger.exception("invalid function configuration")
            return _payload(error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"))
        if config.authorization == "cognito-groups":
            refused = auth.refusal(event)
            if refused is not None:
                logger.info("request refused", extra={"right": refused.right, "groups": refused.has})
                return _payload(error_response(HTTPStatus.FORBIDDEN, refused.message, [refused.detail()]))
        app.append_context(api=api, config=config)
        return app.resolve(event, context)

    return handler
