"""Lambda entry point of the /models/ resource (HTTP API, payload 2.0)."""

from closecast.api.handler import http_handler
from closecast.resources.models import routes

handler = http_handler(routes.router, {"/models": routes.LIST_PARAMS})
