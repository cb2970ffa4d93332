"""Lambda entry point of the /models/ resource (HTTP API, payload 2.0)."""

from closecast.api import models
from closecast.api.handler import http_handler

handler = http_handler(models.router, {"/models": models.LIST_PARAMS})
