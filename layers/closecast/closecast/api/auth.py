"""Who may call what: reading needs the `readers` or `writers` group, writing (POST, jobs) the `writers` group.

API Gateway's JWT authorizer has already checked the token (signature, issuer, audience, expiry) and put its
claims in `requestContext.authorizer.jwt.claims`; it checks scopes only, and Cognito tokens from
USER_PASSWORD_AUTH/SRP carry no resource scopes (and ID tokens none at all), so the groups are checked here,
from the `cognito:groups` claim, in one place for every resource function (`closecast.api.handler`).
API Gateway writes array claims as `"[readers writers]"`; a JSON array or a list is read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

READERS = "readers"
WRITERS = "writers"
GROUPS_CLAIM = "cognito:groups"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Routes the template leaves without an authorizer (checked against template.yaml by the template tests).
PUBLIC_PATHS = frozenset({"/healthcheck"})

Right = Literal["read", "write"]
GROUPS_FOR: dict[Right, frozenset[str]] = {
    "read": frozenset({READERS, WRITERS}),
    "write": frozenset({WRITERS}),
}


@dataclass(frozen=True)
class Refusal:
    """Why the caller may not do this: the right it lacks and the groups that would grant it."""

    right: Right
    groups: frozenset[str]
    has: tuple[str, ...]

    @property
    def message(self) -> str:
        return f"forbidden: {self.right} access needs the {' or '.join(sorted(self.groups))} group"

    def detail(self) -> dict[str, Any]:
        held = ", ".join(self.has) or "none"
        return {
            "field": GROUPS_CLAIM,
            "location": "token",
            "message": f"missing right '{self.right}': the token's groups are {held}",
        }


def required_right(method: str) -> Right:
    return "read" if method.upper() in READ_METHODS else "write"


def _parse_groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    if not isinstance(value, str):
        return ()
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text[1:-1].replace(",", " ").split()
        if isinstance(parsed, list):
            return tuple(str(v) for v in parsed)
    return tuple(part for part in text.replace(",", " ").split() if part)


def caller_groups(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The groups in the verified token's claims (none when the request carries no authorizer context)."""
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    return _parse_groups(claims.get(GROUPS_CLAIM))


def refusal(event: Mapping[str, Any]) -> Refusal | None:
    """None when the caller may make this request; otherwise what is missing. A request without claims on a
    guarded path is refused: the function never trusts a route the authorizer does not guard."""
    http = (event.get("requestContext") or {}).get("http") or {}
    path = str(http.get("path") or event.get("rawPath") or "").rstrip("/") or "/"
    if path in PUBLIC_PATHS:
        return None
    right = required_right(str(http.get("method") or "GET"))
    has = caller_groups(event)
    if GROUPS_FOR[right] & set(has):
        return None
    return Refusal(right, GROUPS_FOR[right], has)
