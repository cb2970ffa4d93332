"""Lambda entry point of the /jobs/ resource and the original's /train-model/, /inference-model/ (HTTP API)."""

from closecast.api.handler import http_handler
from closecast.resources.jobs import routes

handler = http_handler(routes.router, routes.ALLOWED_QUERY)
