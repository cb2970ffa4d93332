"""Sign-in through the local cloud as a client meets it: real Cognito tokens from moto's user pool, checked by
the gateway the way API Gateway's JWT authorizer checks them (signature against the pool's JWKS, issuer,
audience, expiry), then the caller's groups checked by the function (readers read, writers write)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

from closecast_tools.local.cloud import CloudOptions, LocalCloud, client, sign_in

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = {"data": [{"date_id": 4001, "trading_date": "2031-01-02"}]}  # a date no other test maps


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def add_user(state: dict[str, Any], username: str, groups: list[str], pool_id: str | None = None) -> str:
    """A confirmed user of the pool in these groups; returns the password."""
    idp = client("cognito-idp", state["aws_endpoint_url"])
    pool = pool_id or state["demo_user"]["user_pool_id"]
    password = f"Pw1!{secrets.token_urlsafe(12)}"
    idp.admin_create_user(UserPoolId=pool, Username=username, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username=username, Password=password, Permanent=True)
    for group in groups:
        idp.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=group)
    return password


@pytest.fixture(scope="module")
def api(local_cloud: Any) -> str:
    return str(local_cloud.state["api_url"])


@pytest.fixture(scope="module")
def demo_access_token(local_cloud: Any) -> str:
    return str(sign_in(local_cloud.state)["AccessToken"])


@pytest.fixture(scope="module")
def reader_token(local_cloud: Any) -> str:
    password = add_user(local_cloud.state, "reader@example.com", ["readers"])
    return str(sign_in(local_cloud.state, "reader@example.com", password)["AccessToken"])


def test_a_request_without_a_token_is_401_with_a_json_body(api: str) -> None:
    """Given no Authorization header, when a guarded route is called, then 401 {"message": "Unauthorized"} (what
    API Gateway answers), for reads and writes alike."""
    assert http("GET", f"{api}/stock_data/") == (401, {"message": "Unauthorized"})
    assert http("POST", f"{api}/date_mappings/", ROWS) == (401, {"message": "Unauthorized"})


def test_a_header_that_is_not_a_jwt_is_401(api: str) -> None:
    """Given `Bearer` with nothing or with text that is not a JWT, then 401."""
    for token in ("", "not-a-jwt", "a.b.c"):
        assert http("GET", f"{api}/models/", token=token)[0] == 401


def test_the_demo_user_writes_and_reads_with_an_access_token(api: str, demo_access_token: str) -> None:
    """Given the demo user's access token (groups writers and readers), then POST is 201 and GET 200."""
    status, body = http("POST", f"{api}/date_mappings/", ROWS, token=demo_access_token)
    assert (status, body) == (201, {"rows": 1})
    status, body = http("GET", f"{api}/date_mappings/?date_id=4001", token=demo_access_token)
    assert status == 200 and body["data"][0]["date_id"] == 4001


def test_an_id_token_is_accepted_by_its_audience(local_cloud: Any, api: str) -> None:
    """Given the demo user's ID token (audience in `aud`, not `client_id`), then GET is 200."""
    token = sign_in(local_cloud.state)["IdToken"]
    assert http("GET", f"{api}/models/", token=token)[0] == 200


def test_an_expired_token_is_401(local_cloud: Any, api: str, demo_access_token: str) -> None:
    """Given a token the pool's own key signed with every claim right but `exp` an hour past, then 401."""
    claims = jwt.decode(demo_access_token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 7200, auth_time=now - 7200, exp=now - 3600)
    # moto signs every pool's tokens with the key it ships; the test signs with that same key
    private = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"), algorithm="RS256")
    expired = jwt.encode(claims, private.key, algorithm="RS256", headers={"kid": "dummy"})
    assert http("GET", f"{api}/stock_data/", token=expired) == (401, {"message": "Unauthorized"})
    fresh = jwt.encode({**claims, "exp": now + 600}, private.key, algorithm="RS256", headers={"kid": "dummy"})
    assert http("GET", f"{api}/stock_data/", token=fresh)[0] == 200  # the same token, in date, passes


def test_a_forged_token_signed_by_another_key_is_401(api: str, demo_access_token: str) -> None:
    """Given the demo user's exact claims and key id, re-signed with a key that is not the pool's, then 401."""
    claims = jwt.decode(demo_access_token, options={"verify_signature": False})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "dummy"})
    assert http("POST", f"{api}/date_mappings/", ROWS, token=forged) == (401, {"message": "Unauthorized"})
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert http("GET", f"{api}/models/", token=unsigned)[0] == 401


def test_a_token_of_another_user_pool_is_401(local_cloud: Any, api: str) -> None:
    """Given a real token of another pool (in a group named `writers` too), then 401: its issuer is not ours."""
    state = local_cloud.state
    idp = client("cognito-idp", state["aws_endpoint_url"])
    pool = idp.create_user_pool(PoolName="someone-else")["UserPool"]["Id"]
    app = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="other", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    idp.create_group(UserPoolId=pool, GroupName="writers")
    password = add_user(state, "intruder@example.com", ["writers"], pool_id=pool)
    token = idp.initiate_auth(
        ClientId=app,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "intruder@example.com", "PASSWORD": password},
    )["AuthenticationResult"]["AccessToken"]
    assert http("POST", f"{api}/date_mappings/", ROWS, token=token) == (401, {"message": "Unauthorized"})


def test_a_token_of_another_app_client_of_our_pool_is_401(local_cloud: Any, api: str) -> None:
    """Given a token our pool issued to another app client, then 401: the audience is the API's client only."""
    state = local_cloud.state
    idp = client("cognito-idp", state["aws_endpoint_url"])
    pool = state["demo_user"]["user_pool_id"]
    other = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="not-the-api", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    token = idp.initiate_auth(
        ClientId=other,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={
            "USERNAME": state["demo_user"]["username"],
            "PASSWORD": state["demo_user"]["password"],
        },
    )["AuthenticationResult"]["AccessToken"]
    assert http("GET", f"{api}/models/", token=token)[0] == 401


def test_a_reader_reads_but_posting_is_403_naming_the_missing_right(api: str, reader_token: str) -> None:
    """Given a user in `readers` only, then GET is 200 and POST is 403 with a JSON body naming the write right,
    and nothing is stored."""
    assert http("GET", f"{api}/stock_data/", token=reader_token)[0] == 200
    body = {"data": [{"date_id": 4002, "trading_date": "2031-01-03"}]}
    status, answer = http("POST", f"{api}/date_mappings/", body, token=reader_token)
    assert status == 403
    assert answer["message"] == "forbidden: write access needs the writers group"
    assert answer["errors"] == [
        {
            "field": "cognito:groups",
            "location": "token",
            "message": "missing right 'write': the token's groups are readers",
        }
    ]
    status, listed = http("GET", f"{api}/date_mappings/?date_id=4002", token=reader_token)
    assert status == 200 and listed["data"] == []


def test_a_signed_in_user_in_no_group_may_not_read(local_cloud: Any, api: str) -> None:
    """Given a valid token of a user in no group, then GET is 403 naming the read right."""
    password = add_user(local_cloud.state, "nobody@example.com", [])
    token = sign_in(local_cloud.state, "nobody@example.com", password)["AccessToken"]
    status, answer = http("GET", f"{api}/models/", token=token)
    assert status == 403 and "read" in answer["message"]


def test_healthcheck_needs_no_token(api: str) -> None:
    """Given no token, when GET /healthcheck/ is called, then 200: the one open route."""
    status, body = http("GET", f"{api}/healthcheck/")
    assert status == 200, body


def test_closecast_token_prints_a_token_the_api_accepts(local_cloud: Any, api: str) -> None:
    """Given the running local cloud, when `closecast token` runs, then it prints one access token that GETs 200."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "closecast_tools.cli",
            "token",
            "--state-dir",
            str(local_cloud.options.state_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert http("GET", f"{api}/stock_data/", token=token)[0] == 200


def test_local_json_names_the_demo_user_and_its_groups(local_cloud: Any) -> None:
    """Given `closecast up`, then local.json has auth on and the demo user's credentials and groups."""
    state = json.loads((local_cloud.options.state_dir / "local.json").read_text())
    assert state["auth"] is True
    assert state["demo_user"]["username"] == "demo@example.com"
    assert state["demo_user"]["groups"] == ["readers", "writers"]
    assert state["demo_user"]["password"] and state["demo_user"]["client_id"]


@pytest.fixture(scope="module")
def open_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A second local cloud started as `closecast up --no-auth` (no pollers: only the API is the point)."""
    state_dir = tmp_path_factory.mktemp("closecast-no-auth")
    cloud = LocalCloud(CloudOptions(root=REPO, state_dir=state_dir, pollers=False, auth=False))
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


def test_no_auth_serves_token_less_clients(open_cloud: LocalCloud) -> None:
    """Given `closecast up --no-auth`, then a client without a token (such as the original's) reads and writes."""
    api = open_cloud.state["api_url"]
    assert http("POST", f"{api}/date_mappings/", ROWS) == (201, {"rows": 1})
    status, body = http("GET", f"{api}/date_mappings/?date_id=4001")
    assert status == 200 and len(body["data"]) == 1
    assert open_cloud.state["auth"] is False
