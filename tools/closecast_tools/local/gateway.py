"""The local HTTP API: routes read from template.yaml, each request turned into a payload-2.0 event for the
function behind the route, and the function's answer turned back into HTTP (as API Gateway HTTP APIs do).
A route the template guards with a JWT authorizer needs a token that authorizer accepts (401 otherwise);
its claims reach the function in `requestContext.authorizer.jwt`."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from closecast_tools.local.authorizer import JwtAuthorizer, Unauthorized, event_authorizer
from closecast_tools.local.runtime import InvokeResult
from closecast_tools.local.template import Route

MAX_BODY = 10 * 1024 * 1024  # HTTP API payload quota


def _route_regex(path: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("+}"):
            pattern += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(f"^{pattern}$")


class RouteTable:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        # exact paths before parameterised ones, longer before shorter (HTTP API's "most specific" rule)
        ordered = sorted(self.routes, key=lambda r: ("{" in r.path, -len(r.path), r.method == "ANY"))
        self._compiled = [(r, _route_regex(r.path)) for r in ordered]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, regex in self._compiled:
            found = regex.match(path)
            if found and route.method in (method, "ANY"):
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None


def build_event(
    route: Route,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str],
    source_ip: str,
    api_id: str = "local",
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    text: str | None = None
    if body and content_type.startswith(("text/", "application/json", "application/x-www-form")):
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = None  # API Gateway passes bytes it cannot read as text base64-encoded
    is_text = not body or text is not None
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": api_id,
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    if body:
        event["body"] = text if text is not None else base64.b64encode(body).decode()
    return event


def to_http(result: InvokeResult) -> tuple[int, dict[str, str], bytes]:
    """Map a function's answer to HTTP the way payload format 2.0 does."""
    if not result.ok:
        return 500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}'
    payload = result.payload
    if not (isinstance(payload, dict) and "statusCode" in payload):
        # 2.0 infers a 200 JSON response from any other valid JSON answer
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()
    headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    raw = payload.get("body") or ""
    body = base64.b64decode(raw) if payload.get("isBase64Encoded") else str(raw).encode()
    headers.setdefault("Content-Type", "application/json")
    cookies = payload.get("cookies") or []
    if cookies:
        headers["Set-Cookie"] = "; ".join(cookies)
    return int(payload["statusCode"]), headers, body


Invoke = Callable[[str, dict[str, Any]], InvokeResult]


class LocalGateway:
    """`authorizers` maps the template's authorizer names to their local checks; None serves every route
    without one (`closecast up --no-auth`)."""

    def __init__(
        self,
        routes: Sequence[Route],
        invoke: Invoke,
        host: str = "127.0.0.1",
        port: int = 0,
        authorizers: Mapping[str, JwtAuthorizer] | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self.invoke = invoke
        self.authorizers = authorizers
        if authorizers is not None:
            missing = {r.authorizer for r in routes if r.authorizer and r.authorizer not in authorizers}
            if missing:
                raise ValueError(f"routes name authorizers the gateway was not given: {sorted(missing)}")
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "closecast-local-gateway"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: HTTPStatus, message: str) -> None:
                self._send(
                    int(status),
                    {"Content-Type": "application/json"},
                    json.dumps({"message": message}).encode(),
                )

            def _read_body(self) -> bytes | None:
                """The request body, or None after answering a request whose framing is invalid."""
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks: list[bytes] = []
                    total = 0
                    while True:
                        size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                        try:
                            size = int(size_line, 16)
                        except ValueError:
                            self._error(HTTPStatus.BAD_REQUEST, "invalid chunked body")
                            return None
                        if size == 0:
                            while self.rfile.readline(1024).strip():  # trailers
                                pass
                            return b"".join(chunks)
                        total += size
                        if total > MAX_BODY:
                            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
                            return None
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline(8)
                raw_length = self.headers.get("Content-Length")
                if raw_length is None:
                    return b""
                if not raw_length.strip().isdigit():
                    self._error(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
                    return None
                length = int(raw_length)
                if length > MAX_BODY:
                    self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
                    return None
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                body = self._read_body()
                if body is None:
                    self.close_connection = True
                    return
                found = gateway.table.match(self.command, parts.path)
                if found is None:
                    self._error(HTTPStatus.NOT_FOUND, "Not Found")
                    return
                route, params = found
                authorizer: dict[str, Any] | None = None
                if route.authorizer and gateway.authorizers is not None:
                    try:
                        claims = gateway.authorizers[route.authorizer].claims(dict(self.headers.items()))
                    except Unauthorized:
                        self._error(HTTPStatus.UNAUTHORIZED, "Unauthorized")
                        return
                    authorizer = event_authorizer(claims)
                event = build_event(
                    route,
                    self.command,
                    parts.path,
                    parts.query,
                    dict(self.headers.items()),
                    body,
                    params,
                    self.client_address[0],
                    authorizer=authorizer,
                )
                self._send(*to_http(gateway.invoke(route.function, event)))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalGateway:
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
