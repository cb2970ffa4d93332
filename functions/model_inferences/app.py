"""Lambda entry point of the /model-inferences/ resource (HTTP API, payload 2.0)."""

from closecast.api import model_inferences
from closecast.api.handler import http_handler

handler = http_handler(model_inferences.router, {"/model-inferences": model_inferences.LIST_PARAMS})
