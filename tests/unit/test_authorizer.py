"""The local gateway's JWT authorizer on its own: keys from a JWKS document, the checks API Gateway makes, and the
claims as a payload-2.0 event carries them. Keys are generated here; the JWKS is served by a function."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from closecast_tools.local.authorizer import JwksCache, JwtAuthorizer, Unauthorized, event_authorizer

pytestmark = pytest.mark.unit

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test"
CLIENT = "client123"


def new_key(kid: str) -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, {**public, "kid": kid, "alg": "RS256", "use": "sig"}


class Jwks:
    def __init__(self, *jwks: dict[str, Any]) -> None:
        self.keys = list(jwks)
        self.fetched = 0

    def __call__(self, url: str) -> bytes:
        self.fetched += 1
        return json.dumps({"keys": self.keys}).encode()


def token(key: Any, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "client_id": CLIENT, "token_use": "access", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid}
    )


@pytest.fixture
def setup() -> tuple[Any, Jwks, JwtAuthorizer]:
    key, public = new_key("k1")
    jwks = Jwks(public)
    authorizer = JwtAuthorizer(ISSUER, [CLIENT], JwksCache("http://jwks", fetch=jwks))
    return key, jwks, authorizer


def test_the_key_set_is_fetched_once_for_many_requests(setup: tuple[Any, Jwks, JwtAuthorizer]) -> None:
    """Given ten requests with valid tokens, then the JWKS is fetched once (cached) and each is accepted."""
    key, jwks, authorizer = setup
    for _ in range(10):
        assert authorizer.claims({"Authorization": f"Bearer {token(key)}"})["client_id"] == CLIENT
    assert jwks.fetched == 1


def test_a_rotated_key_is_found_by_fetching_the_set_again(setup: tuple[Any, Jwks, JwtAuthorizer]) -> None:
    """Given the pool adds a key after the set was cached, when a token names it, then the set is fetched again
    (once the cached copy is a second old) and the token accepted."""
    key, jwks, authorizer = setup
    authorizer.claims({"authorization": token(key)})  # without "Bearer " too, as API Gateway allows
    new, public = new_key("k2")
    jwks.keys.append(public)
    authorizer.jwks._fetched_at -= 2  # the cached copy is older than a second
    assert authorizer.claims({"authorization": token(new, kid="k2")})["iss"] == ISSUER
    assert jwks.fetched == 2


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": -1},
        {"exp": None},
        {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"},
        {"client_id": "another-client"},
        {"client_id": None, "aud": "another-client"},
        {"token_use": "refresh"},
        {"nbf": 600},
    ],
    ids=["expired", "no-exp", "issuer", "client", "audience", "token-use", "not-yet"],
)
def test_a_token_failing_one_check_is_refused(
    setup: tuple[Any, Jwks, JwtAuthorizer], claims: dict[str, Any]
) -> None:
    """Given a token signed by the pool's key but wrong in one claim (times relative to now), then Unauthorized."""
    key, _, authorizer = setup
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in claims.items()}
    with pytest.raises(Unauthorized):
        authorizer.claims({"authorization": f"Bearer {token(key, **claims)}"})


def test_an_id_token_passes_on_its_aud(setup: tuple[Any, Jwks, JwtAuthorizer]) -> None:
    """Given an ID token (audience in `aud`, no client_id), then it is accepted."""
    key, _, authorizer = setup
    claims = authorizer.claims({"authorization": token(key, client_id=None, aud=CLIENT, token_use="id")})
    assert claims["aud"] == CLIENT


def test_an_hmac_token_keyed_with_the_public_key_is_refused(setup: tuple[Any, Jwks, JwtAuthorizer]) -> None:
    """Given a token whose header says HS256 (the algorithm-confusion attack), then Unauthorized."""
    _, _, authorizer = setup
    forged = jwt.encode(
        {"iss": ISSUER, "client_id": CLIENT, "exp": int(time.time()) + 60}, "secret" * 8, "HS256"
    )
    with pytest.raises(Unauthorized):
        authorizer.claims({"authorization": forged})


def test_claims_reach_the_event_as_api_gateway_writes_them() -> None:
    """Given verified claims, then the event's authorizer context has every value as a string, arrays as
    `[a b]`, and the scopes split from `scope`."""
    context = event_authorizer(
        {"cognito:groups": ["writers", "readers"], "exp": 1700000000, "scope": "a b", "email_verified": True}
    )
    assert context == {
        "jwt": {
            "claims": {
                "cognito:groups": "[writers readers]",
                "exp": "1700000000",
                "scope": "a b",
                "email_verified": "true",
            },
            "scopes": ["a", "b"],
        }
    }
