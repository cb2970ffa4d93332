"""The OpenAPI document of the HTTP API, generated from the resource routers themselves."""

from __future__ import annotations

import json
from typing import Any

from closecast import __version__
from closecast.api.auth import PUBLIC_PATHS
from closecast.api.common import ERROR_STATUSES, new_resolver
from closecast.resources.champions import routes as champions
from closecast.resources.date_mappings import routes as date_mappings
from closecast.resources.healthcheck import routes as healthcheck
from closecast.resources.jobs import routes as jobs
from closecast.resources.model_inferences import routes as model_inferences
from closecast.resources.models import routes as models
from closecast.resources.predictions import routes as predictions
from closecast.resources.stock_data import routes as stock_data

ROUTERS = (
    stock_data.router,
    date_mappings.router,
    models.router,
    champions.router,
    model_inferences.router,
    jobs.router,
    predictions.router,
    healthcheck.router,
)


def document() -> str:
    app = new_resolver()
    for router in ROUTERS:
        app.include_router(router)
    schema = app.get_openapi_json_schema(
        title="closecast",
        version=__version__,
        description="Auction snapshots, date mappings, models (champions, promotions), model inferences, jobs "
        "(training, inference, the daily chain) and live predictions of closecast.",
    )
    doc = json.loads(schema)
    _our_validation_errors(doc)
    _sign_in(doc)
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _our_validation_errors(doc: dict[str, Any]) -> None:
    """Powertools documents 422 with its own `{"detail": ...}` body; closecast answers every error, 422 included,
    with ErrorBody. Point every 422 at it and drop the unused schemas."""
    schemas = doc.get("components", {}).get("schemas", {})
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses and not operation.get("parameters") and "requestBody" not in operation:
                del responses["422"]  # nothing to validate
            response = responses.get("422")
            if response is not None:
                response["description"] = ERROR_STATUSES[422]
                response["content"] = {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _sign_in(doc: dict[str, Any]) -> None:
    """Every operation but the public ones takes a Cognito token (the HTTP API's JWT authorizer)."""
    doc.setdefault("components", {})["securitySchemes"] = {
        "cognito": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Cognito access or ID token of the stack's user pool (`closecast token` locally). "
            "Reading needs the readers or writers group; writing the writers group.",
        }
    }
    doc["security"] = [{"cognito": []}]
    for path, operations in doc.get("paths", {}).items():
        if (path.rstrip("/") or "/") in PUBLIC_PATHS:
            for operation in operations.values():
                operation["security"] = []
