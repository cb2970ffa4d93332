"""Lambda entry point of the /date_mappings/ resource (HTTP API, payload 2.0)."""

from closecast.api.handler import http_handler
from closecast.resources.date_mappings import routes

handler = http_handler(routes.router, {"/date_mappings": routes.LIST_PARAMS})
