"""The OpenAPI document of the HTTP API, generated from the resource routers themselves."""

from __future__ import annotations

import json

from closecast import __version__
from closecast.api import date_mappings, model_inferences, models, stock_data
from closecast.api.common import new_resolver

ROUTERS = (stock_data.router, date_mappings.router, models.router, model_inferences.router)


def document() -> str:
    app = new_resolver()
    for router in ROUTERS:
        app.include_router(router)
    schema = app.get_openapi_json_schema(
        title="closecast",
        version=__version__,
        description="Auction snapshots, date mappings, models and model inferences of closecast.",
    )
    return json.dumps(json.loads(schema), indent=2, sort_keys=True) + "\n"
