"""Lambda entry point of /healthcheck/ (HTTP API, payload 2.0): whether the database is reachable."""

from closecast.api.handler import http_handler
from closecast.resources.healthcheck import routes

handler = http_handler(routes.router, {})  # a monitor's query string (cache busting) is ignored
