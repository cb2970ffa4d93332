"""Answering CloudFormation exactly once, in time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from closecast.custom_resource import respond

pytestmark = pytest.mark.unit


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/response", received
    server.shutdown()
    server.server_close()


def event(url: str) -> dict[str, Any]:
    return {
        "RequestType": "Create",
        "ResponseURL": url,
        "StackId": "s",
        "RequestId": "r",
        "LogicalResourceId": "L",
    }


def test_work_that_would_outlive_the_function_is_answered_failed_in_time(
    response_url: tuple[str, list[dict[str, Any]]],
) -> None:
    """Given 10.5 s left and a 10 s margin, when the work takes 2 s, then FAILED is sent after about 0.5 s and
    nothing else is sent when the work ends."""
    url, received = response_url

    def slow() -> dict[str, Any]:
        time.sleep(2)
        return {}

    started = time.monotonic()
    respond(event(url), lambda: 10_500, slow, physical_id="p")
    assert [r["Status"] for r in received] == ["FAILED"]
    assert "timed out" in received[0]["Reason"]
    assert time.monotonic() - started >= 2


def test_work_that_fails_is_answered_failed_with_the_reason(
    response_url: tuple[str, list[dict[str, Any]]],
) -> None:
    """Given work that raises, then FAILED with the error is sent once and the error propagates."""
    url, received = response_url

    def broken() -> dict[str, Any]:
        raise RuntimeError("relation missing")

    with pytest.raises(RuntimeError):
        respond(event(url), lambda: 60_000, broken, physical_id="p")
    assert [(r["Status"], r["Reason"]) for r in received] == [("FAILED", "RuntimeError: relation missing")]


def test_work_that_succeeds_is_answered_success_with_its_data(
    response_url: tuple[str, list[dict[str, Any]]],
) -> None:
    """Given work that returns data, then SUCCESS with that data and the physical id is sent once."""
    url, received = response_url
    assert respond(event(url), lambda: 60_000, lambda: {"Applied": "0001"}, physical_id="p") == {
        "Applied": "0001"
    }
    assert [(r["Status"], r["Data"], r["PhysicalResourceId"]) for r in received] == [
        ("SUCCESS", {"Applied": "0001"}, "p")
    ]
