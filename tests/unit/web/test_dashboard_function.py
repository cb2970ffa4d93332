"""The dashboard function (web/app.py): the single-page app's files with their content types and security
headers, the page's sign-in configuration, and nothing else."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_event

pytestmark = pytest.mark.unit

WEB = Path(__file__).resolve().parents[3] / "web"


@pytest.fixture(scope="module")
def app() -> Any:
    spec = importlib.util.spec_from_file_location("dashboard_app", WEB / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def config(app: Any, **env: str) -> Any:
    return app.DashboardConfig.from_env({"AWS_REGION": "eu-west-1", **env})


def get(app: Any, path: str, cfg: Any = None, method: str = "GET") -> dict[str, Any]:
    answer: dict[str, Any] = app.serve(method, path, cfg or config(app))
    return answer


def test_the_index_is_served_as_html_with_a_strict_content_security_policy(app: Any) -> None:
    """Given GET /dashboard/, then the page's HTML comes back with a CSP allowing only its own scripts and
    connections to itself and the sign-in endpoint."""
    answer = get(app, "/dashboard/")
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>closecast dashboard</title>" in answer["body"]
    csp = answer["headers"]["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert "connect-src 'self' https://cognito-idp.eu-west-1.amazonaws.com/" in csp
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff"


def test_each_asset_has_its_content_type(app: Any) -> None:
    """Given the page's script, style sheet, vendored chart library and icon, then each is served with its type."""
    cases = {
        "/dashboard/js/main.js": "text/javascript; charset=utf-8",
        "/dashboard/css/dashboard.css": "text/css; charset=utf-8",
        "/dashboard/vendor/chart.umd.js": "text/javascript; charset=utf-8",
        "/dashboard/favicon.svg": "image/svg+xml",
    }
    for path, content_type in cases.items():
        answer = get(app, path)
        assert (answer["statusCode"], answer["headers"]["Content-Type"]) == (200, content_type), path
        assert answer["isBase64Encoded"] is False


def test_the_function_never_serves_its_own_code_or_unknown_paths(app: Any) -> None:
    """Given paths to the handler module, a traversal attempt or a file that does not exist, then each is a 404
    with a JSON message."""
    for path in (
        "/dashboard/app.py",
        "/dashboard/../template.yaml",
        "/dashboard/js/../../app.py",
        "/dashboard/nope.js",
    ):
        answer = get(app, path)
        assert answer["statusCode"] == 404, path
        assert "no such dashboard file" in json.loads(answer["body"])["message"]


def test_view_paths_load_the_app_and_the_bare_prefix_redirects(app: Any) -> None:
    """Given /dashboard (no slash) then a redirect to /dashboard/; given a path without an extension (a view),
    then the app's HTML."""
    assert get(app, "/dashboard")["statusCode"] == 301
    assert get(app, "/dashboard")["headers"]["Location"] == "/dashboard/"
    assert "<!doctype html>" in get(app, "/dashboard/models")["body"]


def test_only_get_and_head_are_allowed(app: Any) -> None:
    """Given a POST to the dashboard, then 405 naming the allowed methods."""
    answer = get(app, "/dashboard/", method="POST")
    assert answer["statusCode"] == 405
    assert answer["headers"]["Allow"] == "GET, HEAD"


def test_config_names_the_user_pool_and_the_sign_in_endpoint(app: Any) -> None:
    """Given the function's environment with the pool and its client (and, locally, an endpoint override), then
    config.json tells the page where to sign in; without a pool it says there is no sign-in."""
    cfg = config(app, USER_POOL_ID="eu-west-1_abc", USER_POOL_CLIENT_ID="client1")
    body = json.loads(get(app, "/dashboard/config.json", cfg)["body"])
    assert body["auth"] == {
        "region": "eu-west-1",
        "user_pool_id": "eu-west-1_abc",
        "client_id": "client1",
        "endpoint": "https://cognito-idp.eu-west-1.amazonaws.com/",
    }
    local = config(app, USER_POOL_ID="p", USER_POOL_CLIENT_ID="c", AWS_ENDPOINT_URL="http://127.0.0.1:5000")
    assert (
        json.loads(get(app, "/dashboard/config.json", local)["body"])["auth"]["endpoint"]
        == "http://127.0.0.1:5000/"
    )
    assert json.loads(get(app, "/dashboard/config.json")["body"])["auth"] is None
    no_auth = config(app, USER_POOL_ID="p", USER_POOL_CLIENT_ID="c", API_AUTHORIZATION="none")
    assert json.loads(get(app, "/dashboard/config.json", no_auth)["body"])["auth"] is None  # up --no-auth


def test_the_handler_answers_the_sample_event(app: Any) -> None:
    """Given events/web/get-index.json (what `sam local invoke -e` takes), then the handler answers 200 HTML."""
    answer = app.handler(load_event("web/get-index.json"), None)
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"].startswith("text/html")


def test_binary_files_are_base64_encoded(app: Any, tmp_path: Path) -> None:
    """Given a PNG among the files, then it is sent base64-encoded, as API Gateway expects binary bodies."""
    answer = app._answer(200, {"Content-Type": "image/png"}, b"\x89PNG\r\n", False)
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == b"\x89PNG\r\n"
