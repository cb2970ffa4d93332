"""Lambda entry point of the /date_mappings/ resource (HTTP API, payload 2.0)."""

from closecast.api import date_mappings
from closecast.api.handler import http_handler

handler = http_handler(date_mappings.router, {"/date_mappings": date_mappings.LIST_PARAMS})
