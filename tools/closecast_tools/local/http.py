"""The HTTP client of the local cloud's tools and tests: JSON in, (status, JSON) out. One place, so that an
Authorization header (the user pool's JWT) is added here once for every caller."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

_authorization: Callable[[], dict[str, str]] = dict


def authorize(headers: Callable[[], dict[str, str]]) -> None:
    """Send the headers `headers()` gives (e.g. the local cloud's `auth_headers(state)`) with every call."""
    global _authorization
    _authorization = headers


def call(method: str, url: str, body: Any = None, *, timeout: float = 60) -> tuple[int, Any]:
    """`method` `url` with `body` as JSON; the status and the decoded JSON answer (4xx/5xx included)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - a local or API URL
        url, data=data, method=method, headers={"Content-Type": "application/json", **_authorization()}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a local or API URL
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"null")
