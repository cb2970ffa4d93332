"""The local gateway's translation between HTTP and payload format 2.0."""

from __future__ import annotations

import base64

import pytest

from closecast_tools.local.gateway import RouteTable, build_event, to_http
from closecast_tools.local.runtime import InvokeResult
from closecast_tools.local.template import Route

pytestmark = pytest.mark.unit


def test_exact_routes_win_over_parameterised_ones() -> None:
    """Given /models/{id} and /models/latest, when /models/latest is requested, then the exact route matches."""
    table = RouteTable([Route("GET", "/models/{id}", "A"), Route("GET", "/models/latest", "B")])
    found = table.match("GET", "/models/latest")
    assert found and found[0].function == "B"
    found = table.match("GET", "/models/7")
    assert found and found[0].function == "A" and found[1] == {"id": "7"}
    assert table.match("POST", "/models/7") is None


def test_event_has_the_payload_2_shape() -> None:
    """Given a GET with repeated query parameters, when the event is built, then values are comma-joined and the
    request context carries the method, path and route key."""
    route = Route("GET", "/stock_data", "F")
    event = build_event(route, "GET", "/stock_data", "a=1&a=2&b=", {"Host": "x"}, b"", {}, "127.0.0.1")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /stock_data"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["headers"] == {"host": "x"}
    assert "body" not in event


def test_binary_body_is_base64() -> None:
    """Given a binary request body, when the event is built, then it is base64 with isBase64Encoded true."""
    route = Route("POST", "/x", "F")
    event = build_event(
        route, "POST", "/x", "", {"Content-Type": "application/octet-stream"}, b"\x00\x01", {}, ""
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01"


def test_function_errors_become_500_and_plain_objects_become_200_json() -> None:
    """Given a failed invocation, then 500; given a plain object answer, then 200 with it as JSON."""
    assert to_http(InvokeResult(False, None, "Boom", "x"))[0] == 500
    status, headers, body = to_http(InvokeResult(True, {"a": 1}))
    assert (status, headers["Content-Type"], body) == (200, "application/json", b'{"a": 1}')
    status, _, body = to_http(InvokeResult(True, {"statusCode": 201, "body": "{}", "headers": {"X": "1"}}))
    assert (status, body) == (201, b"{}")


def test_a_json_body_that_is_not_utf8_is_passed_base64_encoded() -> None:
    """Given bytes that are not UTF-8 under a JSON content type, when the event is built, then the body is
    base64 with isBase64Encoded true (as API Gateway does), instead of failing."""
    event = build_event(
        Route("POST", "/x", "F"),
        "POST",
        "/x",
        "",
        {"Content-Type": "application/json"},
        b"\xff\xfe{}",
        {},
        "",
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe{}"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"BREW /stock_data/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404),
        (b"TRACE /stock_data/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404),
        (b"GET /stock_data/ HTTP/1.1\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
    ],
    ids=["unknown-method", "trace", "too-many-headers"],
)
def test_the_gateway_answers_every_request_with_json(raw: bytes, status: int) -> None:
    """Given a method no route has, or a request http.server refuses, then the gateway answers with a JSON body
    (API Gateway's 404 for an unknown method), never http.server's HTML page."""
    import json
    import socket

    from closecast_tools.local.gateway import LocalGateway

    gateway = LocalGateway(
        [Route("GET", "/stock_data/", "F")], lambda name, event: InvokeResult(True, {})
    ).start()
    try:
        host, port = gateway.server.server_address[:2]
        with socket.create_connection((str(host), int(port)), timeout=10) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        gateway.stop()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode()
    assert b"content-type: application/json" in head.lower()
    assert "message" in json.loads(body)
