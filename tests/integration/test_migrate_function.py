"""The migrate function as CloudFormation calls it: a custom resource that must answer on the pre-signed URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback stand-in for CloudFormation's pre-signed S3 URL, recording what is PUT to it."""
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cfn-response?X-Amz-Signature=x", received
    server.shutdown()
    server.server_close()


def custom_resource_event(request_type: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:closecast-MigrateFunction",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/closecast/1",
        "RequestId": f"req-{request_type}",
        "LogicalResourceId": "DatabaseMigrations",
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": {"MigrationsVersion": "0001"},
    }


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_custom_resource_requests_are_answered_with_success(
    local_cloud: Any, response_url: tuple[str, list[dict[str, Any]]], request_type: str
) -> None:
    """Given a CloudFormation Create/Update/Delete of the migrations resource, when the function runs, then it
    PUTs SUCCESS for that request (migrations already applied are not applied again; Delete keeps the data)."""
    url, received = response_url
    result = local_cloud.invoke("MigrateFunction", custom_resource_event(request_type, url))
    assert result.ok, result.error_message
    assert result.payload == {"applied": []}
    (answer,) = received
    assert answer["Status"] == "SUCCESS"
    assert (answer["RequestId"], answer["LogicalResourceId"]) == (f"req-{request_type}", "DatabaseMigrations")
    assert answer["PhysicalResourceId"] == "closecast-migrations"


def test_the_tables_exist_after_the_local_cloud_started(local_cloud: Any) -> None:
    """Given the local cloud, then its start applied every migration through the migrate function."""
    result = local_cloud.invoke("MigrateFunction", {"action": "migrate"})
    assert result.ok and result.payload == {"applied": []}
