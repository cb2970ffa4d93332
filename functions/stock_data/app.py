"""Lambda entry point of the /stock_data/ resource (HTTP API, payload 2.0)."""

from closecast.api import stock_data
from closecast.api.handler import http_handler

handler = http_handler(stock_data.router, {"/stock_data": stock_data.LIST_PARAMS})
