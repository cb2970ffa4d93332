"""Every sample event in events/ runs through `closecast invoke` (the no-Docker twin of `sam local invoke`)
against the running local cloud, the way a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.event_statuses import EXPECTED_STATUS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Run in the order a user would: schema, rows, mappings, a model before its inferences.
ORDER = ["migrate", "ingest", "stock_data", "date_mappings", "models", "model_inferences", "healthcheck"]
EVENT_FILES = sorted(
    (REPO / "events").rglob("*.json"),
    key=lambda p: (ORDER.index(p.parent.name) if p.parent.name in ORDER else len(ORDER), p.name),
)


def test_every_function_has_a_sample_event() -> None:
    """Given the template's functions, then each has at least one sample event in events/<folder>/."""
    from closecast_tools.local.template import Template

    folders = {p.parent.name for p in EVENT_FILES}
    for spec in Template(REPO / "template.yaml").functions.values():
        assert Path(spec.code_dir).name in folders, spec.logical_id


@pytest.mark.parametrize("event_file", EVENT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_event_runs_through_closecast_invoke(local_cloud: Any, event_file: Path) -> None:
    """Given a sample event, when `closecast invoke <folder> -e <file>` runs against the local cloud, then it
    exits 0 and prints the handler's JSON answer (HTTP events answer with a status code, Kinesis events with
    the partial batch response)."""
    command = [
        sys.executable,
        "-m",
        "closecast_tools.cli",
        "invoke",
        event_file.parent.name,
        "-e",
        str(event_file),
        "--state-dir",
        str(local_cloud.options.state_dir),
    ]
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    if "routeKey" in json.loads(event_file.read_text()):
        name = f"{event_file.parent.name}/{event_file.name}"
        assert answer["statusCode"] == EXPECTED_STATUS[name], answer
        if answer.get("headers", {}).get("Content-Type", "application/json").startswith("application/json"):
            assert json.loads(answer["body"]) is not None
        else:  # the dashboard's page
            assert answer["body"]
    elif event_file.parent.name == "ingest":
        assert set(answer) == {"batchItemFailures"}
        assert answer["batchItemFailures"] == []
