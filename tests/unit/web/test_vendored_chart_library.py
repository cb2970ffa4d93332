"""The chart library is vendored, not fetched from a CDN: each vendored file matches the checksum recorded
beside it in web/vendor/vendor.json (`make vendor-check` compares that record with the registry's package)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

VENDOR = Path(__file__).resolve().parents[3] / "web" / "vendor"


def test_every_vendored_file_matches_its_recorded_checksum() -> None:
    """Given vendor.json, then each file it lists is present and has the recorded sha256."""
    record = json.loads((VENDOR / "vendor.json").read_text())
    for package, entry in record.items():
        assert entry["version"].count(".") == 2, package  # an exact, pinned version
        for source, target in entry["files"].items():
            data = (VENDOR / target["to"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == target["sha256"], f"{package}: {source}"


def test_the_page_loads_the_vendored_library_and_nothing_from_elsewhere() -> None:
    """Given index.html, then the chart library comes from vendor/ and no script or style sheet is remote."""
    html = (VENDOR.parent / "index.html").read_text()
    assert 'src="vendor/chart.umd.js"' in html
    assert "http://" not in html and "https://" not in html
    assert "Chart.js v4.5.1" in (VENDOR / "chart.umd.js").read_text()[:200]
