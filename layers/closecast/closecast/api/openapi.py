"""The OpenAPI document of the HTTP API, generated from the resource routers themselves."""

from __future__ import annotations

import json

from closecast import __version__
from closecast.api.common import new_resolver
from closecast.resources.date_mappings import routes as date_mappings
from closecast.resources.jobs import routes as jobs
from closecast.resources.model_inferences import routes as model_inferences
from closecast.resources.models import routes as models
from closecast.resources.stock_data import routes as stock_data

ROUTERS = (stock_data.router, date_mappings.router, models.router, model_inferences.router, jobs.router)


def document() -> str:
    app = new_resolver()
    for router in ROUTERS:
        app.include_router(router)
    schema = app.get_openapi_json_schema(
        title="closecast",
        version=__version__,
        description="Auction snapshots, date mappings, models, model inferences and jobs (training, inference) of closecast.",
    )
    return json.dumps(json.loads(schema), indent=2, sort_keys=True) + "\n"
