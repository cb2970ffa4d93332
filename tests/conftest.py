"""Fixtures shared by every test layer. Only local files and loopback services are used."""

from __future__ import annotations

import json
from collections.abc import Iterator
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
    cloud = LocalCloud(CloudOptions(root=REPO, state_dir=state_dir))
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()
