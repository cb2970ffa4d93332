"""Lambda entry point: applies the SQL migrations through the Data API.

Invoked by CloudFormation as a custom resource on deploy (Create/Update migrate, Delete keeps the data), or
directly (`{"action": "migrate"}`), which is what the local cloud does at start. It alone uses the master
secret; after the migrations it sets the reader and writer roles' passwords from their own secrets.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast import aws
from closecast.config import MigrateConfig, cached
from closecast.custom_resource import respond
from closecast.db.client import data_api
from closecast.db.migrations import apply_migrations
from closecast.db.roles import set_role_passwords

logger = Logger()


def _migrate() -> list[str]:
    config = cached(MigrateConfig)
    api = data_api(config)
    applied = apply_migrations(api)
    roles = set_role_passwords(
        api, aws.client("secretsmanager"), [config.reader_secret_arn, config.writer_secret_arn]
    )
    logger.info("migrations applied", extra={"applied": applied, "roles": roles})
    return applied


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "RequestType" not in event:  # direct invocation
        return {"applied": _migrate()}

    def work() -> dict[str, Any]:
        applied = _migrate() if event["RequestType"] in ("Create", "Update") else []  # Delete keeps the data
        return {"Applied": ",".join(applied)}

    try:
        data = respond(event, context.get_remaining_time_in_millis, work, physical_id="closecast-migrations")
    except Exception as exc:
        logger.exception("migration failed")
        return {"applied": [], "error": str(exc)}
    return {"applied": [v for v in data["Applied"].split(",") if v]}
