"""Checks that keep the repository honest: the committed OpenAPI document is the one the code generates, and
the code passes the linters `make lint` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from closecast.api.openapi import document

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.unit
def test_committed_openapi_document_matches_the_code() -> None:
    """Given the routers, when the OpenAPI document is generated, then it equals docs/openapi.json
    (regenerate with `closecast openapi --write docs/openapi.json`)."""
    assert (REPO / "docs" / "openapi.json").read_text() == document()


@pytest.mark.unit
def test_openapi_document_names_every_resource_and_its_parameters() -> None:
    """Given the document, then it has the resources, GET and POST each, the job routes (and the original's
    /train-model/, /inference-model/), the live loop's resources (/predictions with its filters, /champions,
    /promotions, PUT on a model's champion), the health check (GET only), and the list parameters."""
    import json

    paths = json.loads(document())["paths"]
    resources = {"/stock_data", "/date_mappings", "/models", "/model-inferences", "/jobs"}
    live = {"/predictions", "/champions", "/promotions", "/models/{model_id}/champion"}
    predictions = "/model-inferences/{inference_id}/predictions"
    others = {"/jobs/{job_id}", "/train-model", "/inference-model", "/healthcheck", predictions}
    assert set(paths) == resources | live | others
    assert set(paths[predictions]) == {"get"}
    assert all({"get", "post"} <= set(paths[r]) for r in resources)
    assert set(paths["/healthcheck"]) == {"get"}
    assert set(paths["/jobs/{job_id}"]) == {"get"}
    assert set(paths["/train-model"]) == set(paths["/inference-model"]) == {"post"}
    assert set(paths["/models/{model_id}/champion"]) == {"put"}
    filters = {p["name"] for p in paths["/predictions"]["get"]["parameters"]}
    assert {"date_id", "seconds_in_bucket", "stock_id", "model_id", "page", "page_size"} <= filters
    names = {p["name"] for p in paths["/stock_data"]["get"]["parameters"]}
    assert {"page", "page_size", "date_id", "stock_id", "seconds_in_bucket"} <= names


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [["ruff", "check", "."], ["ruff", "format", "--check", "."]], ids=" ".join
)
def test_code_passes_ruff(command: list[str]) -> None:
    """Given the repository, when ruff runs as `make lint` runs it, then it reports nothing."""
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_code_passes_mypy() -> None:
    """Given the library, the functions and the tools, when mypy runs, then it finds no type errors."""
    done = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:]
