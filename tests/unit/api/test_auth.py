"""Rights, checked by every HTTP function before anything else: readers read, writers write; and every S3
location a client registers lies in the stack's bucket. Handlers called with payload-2.0 events, the Data API
stubbed (nothing reaches it when a request is refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from closecast.api import auth
from closecast.config import ApiConfig
from tests.unit.api.conftest import BUCKET, Answered, FakeDataApi, event

pytestmark = pytest.mark.unit

Call = Callable[[str, dict[str, Any]], Answered]
MAPPINGS = {"data": [{"date_id": 1, "trading_date": "2024-01-02"}]}


def test_a_reader_posting_is_403_naming_the_write_right_and_nothing_runs(
    call: Call, fake_api: FakeDataApi
) -> None:
    """Given a token in `readers` only, when it POSTs, then 403 naming the missing right, and no statement runs."""
    answered = call("date_mappings", event("POST", "/date_mappings/", body=MAPPINGS, groups=["readers"]))
    assert answered.status == 403
    assert answered.body == {
        "message": "forbidden: write access needs the writers group",
        "errors": [
            {
                "field": "cognito:groups",
                "location": "token",
                "message": "missing right 'write': the token's groups are readers",
            }
        ],
    }
    assert fake_api.calls == [] and fake_api.batches == []


def test_a_reader_posting_garbage_is_still_403_not_422(call: Call) -> None:
    """Given a reader's POST with an invalid body, then 403: rights are checked before the body is read."""
    answered = call("models", event("POST", "/models/", body={"nonsense": True}, groups=["readers"]))
    assert answered.status == 403


@pytest.mark.parametrize("groups", [["readers"], ["writers"], ["readers", "writers"]])
def test_readers_and_writers_may_read(call: Call, groups: list[str]) -> None:
    """Given a token in readers, writers or both, when it GETs, then 200."""
    assert call("models", event("GET", "/models/", groups=groups)).status == 200


def test_a_writer_may_post(call: Call) -> None:
    """Given a token in `writers`, when it POSTs date mappings, then 201."""
    assert (
        call("date_mappings", event("POST", "/date_mappings/", body=MAPPINGS, groups=["writers"])).status
        == 201
    )


def test_no_group_may_not_read(call: Call, fake_api: FakeDataApi) -> None:
    """Given a valid token in no group, when it GETs, then 403 naming the read right."""
    answered = call("stock_data", event("GET", "/stock_data/", groups=[]))
    assert answered.status == 403 and answered.body["message"].startswith("forbidden: read access")
    assert fake_api.calls == []


def test_a_request_without_authorizer_context_is_refused(call: Call) -> None:
    """Given an event with no authorizer claims on a guarded route (a route deployed without the authorizer),
    then 403: the function never trusts an unguarded route."""
    assert call("stock_data", event("GET", "/stock_data/", groups=None)).status == 403


def test_healthcheck_needs_no_groups(call: Call) -> None:
    """Given /healthcheck/ without any authorizer context, then 200."""
    assert call("healthcheck", event("GET", "/healthcheck/", groups=None)).status == 200


def test_with_authorization_none_token_less_requests_pass(
    call: Call, fake_api: FakeDataApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given API_AUTHORIZATION=none (only `closecast up --no-auth` sets it), then a POST without claims is 201."""
    from closecast.api import handler as api_handler

    config = api_handler._context()["config"]
    open_config = ApiConfig.model_validate({**config.model_dump(by_alias=True), "API_AUTHORIZATION": "none"})
    monkeypatch.setattr(api_handler, "_context", lambda: {"api": fake_api, "config": open_config})
    assert call("date_mappings", event("POST", "/date_mappings/", body=MAPPINGS, groups=None)).status == 201


@pytest.mark.parametrize(
    "claim",
    ["[readers writers]", '["readers", "writers"]', "readers,writers", ["readers", "writers"]],
    ids=["api-gateway", "json", "comma", "list"],
)
def test_the_groups_claim_is_read_in_each_spelling(claim: Any) -> None:
    """Given `cognito:groups` as API Gateway writes it (`[a b]`), as JSON, comma-separated or a list, then both
    groups are read."""
    context = {"authorizer": {"jwt": {"claims": {"cognito:groups": claim}}}}
    assert set(auth.caller_groups({"requestContext": context})) == {"readers", "writers"}


def test_the_method_decides_the_right() -> None:
    """Given GET/HEAD/OPTIONS, then read; POST, PUT, PATCH, DELETE, then write."""
    assert {
        m: auth.required_right(m) for m in ("GET", "head", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
    } == {
        "GET": "read",
        "head": "read",
        "OPTIONS": "read",
        "POST": "write",
        "PUT": "write",
        "PATCH": "write",
        "DELETE": "write",
    }


# ------------------------------------------------------------------ locations in the stack's bucket


@pytest.mark.parametrize(
    ("field", "uri"),
    [
        ("artifact_uri", "s3://someone-elses-bucket/models/m.ubj"),
        ("metadata_uri", "s3://someone-elses-bucket/models/m.json"),
        ("artifact_uri", f"s3://{BUCKET}-evil/models/m.ubj"),
    ],
    ids=["artifact", "metadata", "bucket-name-prefix"],
)
def test_a_model_location_outside_the_stack_bucket_is_422_naming_it(
    call: Call, fake_api: FakeDataApi, field: str, uri: str
) -> None:
    """Given a model whose artifact or metadata lies outside the stack's bucket, then 422 naming that field, and
    nothing is written."""
    body = {
        "name": "m",
        "artifact_uri": f"s3://{BUCKET}/models/m.ubj",
        "metadata_uri": f"s3://{BUCKET}/models/m.json",
        "feature_set": "v1",
        field: uri,
    }
    answered = call("models", event("POST", "/models/", body=body))
    assert answered.status == 422
    assert [e["field"] for e in answered.body["errors"]] == [field]
    assert not any("INSERT" in sql for sql, _ in fake_api.calls)


def test_predictions_outside_the_stack_bucket_are_422_naming_the_field(
    call: Call, fake_api: FakeDataApi
) -> None:
    """Given an inference record whose predictions file lies in another bucket, then 422 naming predictions_uri."""
    body = {"model_id": 1, "date_id": 3, "predictions_uri": "s3://elsewhere/p.csv", "n_rows": 1}
    answered = call("model_inferences", event("POST", "/model-inferences/", body=body))
    assert answered.status == 422
    assert [e["field"] for e in answered.body["errors"]] == ["predictions_uri"]
    assert not any("INSERT" in sql for sql, _ in fake_api.calls)
