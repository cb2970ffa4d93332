"""Lambda entry point of the /model-inferences/ resource (HTTP API, payload 2.0)."""

from closecast.api.handler import http_handler
from closecast.resources.model_inferences import routes

handler = http_handler(routes.router, {"/model-inferences": routes.LIST_PARAMS})
