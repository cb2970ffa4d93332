"""Answering CloudFormation exactly once, in time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from closecast.custom_resource import respond

pytestmark = pytest.mark.unit


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
