"""Answering CloudFormation custom resources (the response goes to the pre-signed S3 URL CloudFormation gives)."""

from __future__ import annotations

import json
import urllib.request
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
