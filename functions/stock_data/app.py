"""Lambda entry point of the /stock_data/ resource (HTTP API, payload 2.0)."""

from closecast.api.handler import http_handler
from closecast.resources.stock_data import routes

handler = http_handler(routes.router, {"/stock_data": routes.LIST_PARAMS})
