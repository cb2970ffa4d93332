"""Lambda entry point of the /predictions/ resource (HTTP API, payload 2.0)."""

from closecast.api.handler import http_handler
from closecast.resources.predictions import routes

handler = http_handler(routes.router, {"/predictions": routes.LIST_PARAMS})
