"""The HTTP API's JWT authorizer, locally: checks a bearer token the way API Gateway's JWT authorizer does.

For each request on a route with the authorizer: the token from the identity source (the Authorization header,
with or without `Bearer `), its signature against the issuer's JWKS (RS256, key by `kid`; the key set is
cached and fetched again when a token names a key it does not hold), `iss` equal to the configured issuer,
`aud` (ID tokens) or else `client_id` (access tokens) one of the configured audiences, `exp`, `nbf` and `iat`,
and, as Cognito's tokens carry it, `token_use` `id` or `access`. Any failure is 401 `{"message":"Unauthorized"}`.
The claims reach the function in `requestContext.authorizer.jwt.claims`, every value a string and arrays as
API Gateway writes them (`"[readers writers]"`).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHMS = ["RS256"]  # what API Gateway's JWT authorizer accepts
JWKS_MAX_AGE_S = 300.0


class Unauthorized(Exception):
    """The request carries no token the authorizer accepts (the reason is for logs, never for the caller)."""


@dataclass
class JwksCache:
    """The issuer's public keys by `kid`, fetched on first use, again after `max_age_s`, and at most once a
    second when a token names a key the set does not hold (a key rotation)."""

    url: str
    max_age_s: float = JWKS_MAX_AGE_S
    fetch: Callable[[str], bytes] | None = None
    _keys: dict[str, Any] = field(default_factory=dict)
    _fetched_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fetches: int = 0

    def _download(self) -> bytes:
        if self.fetch is not None:
            return self.fetch(self.url)
        with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - the pool's JWKS URL
            body: bytes = response.read()
            return body

    def _refresh(self) -> None:
        document = json.loads(self._download())
        keys = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") == "RSA" and jwk.get("kid"):
                keys[str(jwk["kid"])] = jwt.PyJWK(jwk, algorithm="RS256").key
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.fetches += 1

    def key(self, kid: str) -> Any:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.max_age_s or (kid not in self._keys and age > 1.0):
                try:
                    self._refresh()
                except (OSError, ValueError, jwt.PyJWTError) as exc:
                    raise Unauthorized(f"cannot read the issuer's keys: {exc}") from exc
            if kid not in self._keys:
                raise Unauthorized(f"no key {kid!r} in the issuer's JWKS")
            return self._keys[kid]


@dataclass
class JwtAuthorizer:
    issuer: str
    audience: Sequence[str]
    jwks: JwksCache
    header: str = "authorization"

    def token(self, headers: Mapping[str, str]) -> str:
        value = next((v for k, v in headers.items() if k.lower() == self.header), "").strip()
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        if not value:
            raise Unauthorized("no token")
        return value

    def claims(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """The verified claims of the request's token, or Unauthorized."""
        token = self.token(headers)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"not a JWT: {exc}") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"algorithm {header.get('alg')!r} is not accepted")
        key = self.jwks.key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"token refused: {exc}") from exc
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(a in self.audience for a in audiences):
            raise Unauthorized("token is for another audience")
        if claims.get("token_use", "access") not in ("id", "access"):
            raise Unauthorized(f"token_use {claims.get('token_use')!r} is not accepted")
        return claims


def claim_text(value: Any) -> str:
    """A claim value as API Gateway puts it in a payload-2.0 event: strings as they are, arrays as
    `[a b]`, numbers and booleans in their JSON spelling, objects as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(claim_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def event_authorizer(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The `requestContext.authorizer` of a payload-2.0 event for these verified claims."""
    scope = claims.get("scope")
    return {
        "jwt": {
            "claims": {str(k): claim_text(v) for k, v in claims.items()},
            "scopes": str(scope).split() if scope else None,
        }
    }
