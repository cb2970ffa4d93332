"""Fixtures shared by every test layer. Only local files and loopback services are used."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data beside the checkout (../shared/data); tests that need it skip without it."""
    path = REPO.parent / "shared" / "data"
    if not (path / "kaggle-example" / "test.csv").is_file():
        pytest.skip(f"reference data not found at {path}")
    return path


def load_event(relative: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / relative).read_text())
    return event


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The whole local cloud (embedded PostgreSQL, Data API endpoint, moto server, gateway, pollers) for the
    test session, with its state in a temporary directory."""
    from closecast_tools.local.cloud import CloudOptions, LocalCloud

    state_dir = tmp_path_factory.mktemp("closecast-state")
    cloud = LocalCloud(CloudOptions(root=REPO, state_dir=state_dir, schedules=False))
    cloud.start()
    # the tools' HTTP helper (jobs, the live loop driver) signs in as the demo user: sign-in is not their point
    from closecast_tools.local.cloud import auth_headers
    from closecast_tools.local.http import authorize

    state = cloud.state
    authorize(lambda: auth_headers(state))
    try:
        yield cloud
    finally:
        authorize(dict)
        cloud.stop()


@pytest.fixture
def api_headers(local_cloud: Any) -> dict[str, str]:
    """The Authorization header of the local cloud's demo user (in the readers and writers groups), for tests
    that call the HTTP API where sign-in is not the point."""
    from closecast_tools.local.cloud import auth_headers

    return auth_headers(local_cloud.state)


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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cfn-response?X-Amz-Signature=x", received
    server.shutdown()
    server.server_close()
