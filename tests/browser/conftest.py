"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright for Python; never a downloaded
browser), on a local cloud of its own holding a few synthetic days. Screenshots of each view are saved in
tests/browser/screenshots/.

Set CLOSECAST_BROWSER_STATE=/path/to/local.json to run against a `closecast up` that is already running (its
data is then used as it is)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = os.environ.get("CLOSECAST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAYS = 5  # refit on the first three, update with the fourth, predict the fifth
SEED = 11


def _get(url: str, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _seed_market(state: dict[str, Any]) -> int:
    """Put DAYS synthetic days (rows with their targets) on the stream and wait until the API serves them."""
    from closecast.market.schema import KAGGLE_COLUMNS
    from closecast_tools.local.cloud import auth_headers, client
    from closecast_tools.market.generate import generate_frame
    from closecast_tools.market.replay import ReplayOptions, replay

    frame = generate_frame(days=DAYS, seed=SEED)
    frame = frame[[c for c in KAGGLE_COLUMNS if c in frame.columns]]
    frame = frame.sort_values(["date_id", "seconds_in_bucket", "stock_id"]).reset_index(drop=True)
    kinesis = client("kinesis", state["aws_endpoint_url"])
    replay(
        [day for _, day in frame.groupby("date_id")],
        kinesis,
        state["stream_name"],
        ReplayOptions(shape="envelope", progress=False),
    )
    url = f"{state['api_url']}/stock_data/?page_size=1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if _get(url, auth_headers(state))["total_results"] >= len(frame):
            return len(frame)
        time.sleep(1)
    raise AssertionError("the replayed rows never all arrived")


@pytest.fixture(scope="session")
def cloud_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    given = os.environ.get("CLOSECAST_BROWSER_STATE")
    if given:
        yield json.loads(Path(given).read_text())
        return
    from closecast_tools.local.cloud import CloudOptions, LocalCloud

    cloud = LocalCloud(
        CloudOptions(root=REPO, state_dir=tmp_path_factory.mktemp("browser-cloud"), schedules=False)
    )
    cloud.start()
    try:
        _seed_market(cloud.state)
        yield cloud.state
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS
