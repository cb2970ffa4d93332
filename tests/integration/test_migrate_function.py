"""The migrate function as CloudFormation calls it: a custom resource that must answer on the pre-signed URL."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def custom_resource_event(request_type: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:closecast-MigrateFunction",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/closecast/1",
        "RequestId": f"req-{request_type}",
        "LogicalResourceId": "DatabaseMigrations",
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": {"MigrationsVersion": "0001"},
    }


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_custom_resource_requests_are_answered_with_success(
    local_cloud: Any, response_url: tuple[str, list[dict[str, Any]]], request_type: str
) -> None:
    """Given a CloudFormation Create/Update/Delete of the migrations resource, when the function runs, then it
    PUTs SUCCESS for that request (migrations already applied are not applied again; Delete keeps the data)."""
    url, received = response_url
    result = local_cloud.invoke("MigrateFunction", custom_resource_event(request_type, url))
    assert result.ok, result.error_message
    assert result.payload == {"applied": []}
    (answer,) = received
    assert answer["Status"] == "SUCCESS"
    assert (answer["RequestId"], answer["LogicalResourceId"]) == (f"req-{request_type}", "DatabaseMigrations")
    assert answer["PhysicalResourceId"] == "closecast-migrations"


def test_the_tables_exist_after_the_local_cloud_started(local_cloud: Any) -> None:
    """Given the local cloud, then its start applied every migration through the migrate function."""
    result = local_cloud.invoke("MigrateFunction", {"action": "migrate"})
    assert result.ok and result.payload == {"applied": []}
