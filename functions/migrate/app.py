"""Lambda entry point: applies the SQL migrations through the Data API.

Invoked by CloudFormation as a custom resource on deploy (Create/Update migrate, Delete keeps the data), or
directly (`{"action": "migrate"}`), which is what the local cloud does at start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from closecast.config import DatabaseConfig, cached
from closecast.custom_resource import respond
from closecast.db.client import data_api
from closecast.db.migrations import apply_migrations

logger = Logger()


def _migrate() -> list[str]:
    config = cached(DatabaseConfig)
    applied = apply_migrations(data_api(config))
    logger.info("migrations applied", extra={"applied": applied})
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
