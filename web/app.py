"""Lambda entry point of the dashboard (HTTP API, payload 2.0): serves the single-page app's static files, which
are this function's own package, at /dashboard/. The page holds no data: it signs in through the user pool and
reads the public API from the browser, so this route needs no authorizer.

Only files with a known content type are served (never this module), from a table built on the first request;
`/dashboard/config.json` tells the page where to sign in (empty when the stack has no user pool)."""

from __future__ import annotations

import base64
import json
import os
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent
PREFIX = "/dashboard"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
TEXT = (".html", ".js", ".css", ".svg", ".json", ".md")


class DashboardConfig(NamedTuple):
    """What the page needs to sign in, from the function's environment (parsed once)."""

    region: str
    user_pool_id: str
    client_id: str
    cognito_endpoint: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> DashboardConfig:
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        # the local cloud points boto3 at its endpoint; on AWS the page calls Cognito's regional endpoint
        endpoint = (
            env.get("AWS_ENDPOINT_URL_COGNITO_IDP")
            or env.get("AWS_ENDPOINT_URL")
            or f"https://cognito-idp.{region}.amazonaws.com"
        )
        signed_in = env.get("API_AUTHORIZATION", "cognito-groups") != "none"  # `closecast up --no-auth`
        return cls(
            region=region,
            user_pool_id=env.get("USER_POOL_ID", "") if signed_in else "",
            client_id=env.get("USER_POOL_CLIENT_ID", ""),
            cognito_endpoint=endpoint.rstrip("/") + "/",
        )

    def page_config(self) -> dict[str, Any]:
        auth = None
        if self.user_pool_id and self.client_id:
            auth = {
                "region": self.region,
                "user_pool_id": self.user_pool_id,
                "client_id": self.client_id,
                "endpoint": self.cognito_endpoint,
            }
        return {"api_base": "", "auth": auth}


@cache
def _config() -> DashboardConfig:
    return DashboardConfig.from_env(dict(os.environ))


@cache
def _files() -> dict[str, Path]:
    """Servable files by their path under /dashboard/ (e.g. "js/main.js")."""
    files: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if not path.is_file() or any(part.startswith((".", "_")) for part in relative.parts):
            continue
        if path.suffix in CONTENT_TYPES:
            files[relative.as_posix()] = path
    return files


def _security_headers(config: DashboardConfig) -> dict[str, str]:
    connect = f"'self' {config.cognito_endpoint}"
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _answer(status: int, headers: dict[str, str], body: bytes, text: bool) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": headers,
        "body": body.decode() if text else base64.b64encode(body).decode(),
        "isBase64Encoded": not text,
    }


def _not_found(path: str) -> dict[str, Any]:
    body = json.dumps({"message": f"no such dashboard file: {path}"}).encode()
    return _answer(404, {"Content-Type": "application/json"}, body, True)


def serve(method: str, raw_path: str, config: DashboardConfig) -> dict[str, Any]:
    if method not in ("GET", "HEAD"):
        body = json.dumps({"message": f"method {method} is not allowed on the dashboard"}).encode()
        return _answer(405, {"Content-Type": "application/json", "Allow": "GET, HEAD"}, body, True)
    if raw_path == PREFIX:
        return _answer(301, {"Location": f"{PREFIX}/", "Content-Type": "application/json"}, b"{}", True)
    if not raw_path.startswith(f"{PREFIX}/"):
        return _not_found(raw_path)
    name = raw_path[len(PREFIX) + 1 :] or "index.html"
    headers = _security_headers(config)
    if name == "config.json":
        headers.update({"Content-Type": "application/json", "Cache-Control": "no-store"})
        return _answer(200, headers, json.dumps(config.page_config()).encode(), True)
    if PurePosixPath(name).suffix == "":
        name = "index.html"  # the page's own views (/dashboard/models) load the app
    path = _files().get(name)
    if path is None:
        return _not_found(raw_path)
    suffix = path.suffix
    cache_control = "no-cache" if suffix in (".html", ".js", ".css") else "public, max-age=3600"
    headers.update({"Content-Type": CONTENT_TYPES[suffix], "Cache-Control": cache_control})
    return _answer(200, headers, path.read_bytes(), suffix in TEXT)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    http = event.get("requestContext", {}).get("http", {})
    return serve(str(http.get("method", "GET")), str(event.get("rawPath", "/")), _config())
