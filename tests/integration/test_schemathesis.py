"""The committed OpenAPI document, fuzzed against the local gateway by schemathesis: every operation, a bounded
number of generated requests each (schema examples, boundary coverage, random fuzzing)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
MAX_EXAMPLES = 30


def test_fuzzing_the_openapi_document_finds_no_server_error_and_no_undocumented_answer(
    local_cloud: Any, tmp_path: Path
) -> None:
    """Given docs/openapi.json and the running local cloud, when schemathesis sends up to 30 generated requests
    per operation and phase, then no answer is a 5xx, every answer's status is documented for its operation,
    and every body matches its documented schema."""
    report = tmp_path / "schemathesis.json"
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "schemathesis"),
            "run",
            str(REPO / "docs" / "openapi.json"),
            "--url",
            local_cloud.gateway.url,
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "60",
            "--no-color",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
        ],
        cwd=tmp_path,  # schemathesis keeps its cache (.schemathesis/) in the working directory
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts is not None and counts.group(1) == counts.group(2) and int(counts.group(1)) > 0, summary
    events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    assert events, "schemathesis wrote no report"
