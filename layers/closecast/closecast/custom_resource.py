"""Answering CloudFormation custom resources (the response goes to the pre-signed S3 URL CloudFormation gives)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from typing import Any


def send_response(
    event: dict[str, Any],
    *,
    success: bool,
    reason: str = "",
    data: dict[str, Any] | None = None,
    physical_id: str | None = None,
    timeout: float = 30.0,
) -> None:
    body = json.dumps(
        {
            "Status": "SUCCESS" if success else "FAILED",
            "Reason": reason[:3000] or ("ok" if success else "failed"),
            "PhysicalResourceId": physical_id
            or event.get("PhysicalResourceId")
            or event["LogicalResourceId"],
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data or {},
        }
    ).encode()
    url = event["ResponseURL"]
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise ValueError("ResponseURL must be https")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()


def respond(
    event: dict[str, Any],
    remaining_ms: Callable[[], int],
    work: Callable[[], dict[str, Any]],
    *,
    physical_id: str,
    margin_s: float = 10.0,
) -> dict[str, Any]:
    """Run `work` and tell CloudFormation how it went, exactly once. If the function is about to time out,
    FAILED is sent first (otherwise the stack would wait an hour for an answer that never comes)."""
    lock = threading.Lock()
    answered = False

    def answer(success: bool, reason: str, data: dict[str, Any] | None = None) -> None:
        nonlocal answered
        with lock:
            if answered:
                return
            answered = True
            send_response(event, success=success, reason=reason, data=data, physical_id=physical_id)

    deadline = max(0.0, remaining_ms() / 1000 - margin_s)
    timer = threading.Timer(deadline, answer, args=(False, "timed out before finishing"))
    timer.daemon = True
    timer.start()
    try:
        data = work()
    except Exception as exc:
        answer(False, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        timer.cancel()
    answer(True, "ok", data)
    return data
