"""Field types of the API models, bounded to what the database columns hold, so that a value PostgreSQL
would refuse is a 422 naming its field rather than a database error."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from closecast.market.schema import INT4_MAX, MAX_DATE_ID, MAX_STOCK_ID

INT8_MAX = 2**63 - 1
MAX_JSON_BYTES = 64 * 1024
MAX_PAGE = 1_000_000

DateId = Annotated[int, Field(ge=0, le=MAX_DATE_ID)]
StockId = Annotated[int, Field(ge=0, le=MAX_STOCK_ID)]
Count = Annotated[int, Field(ge=0, le=INT4_MAX)]
RecordId = Annotated[int, Field(ge=1, le=INT8_MAX)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError as exc:
        raise ValueError("numbers must be finite (no NaN or Infinity)") from exc
    if "\\u0000" in text:
        raise ValueError("must not contain NUL characters")
    if len(text.encode()) > MAX_JSON_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_BYTES} bytes as JSON")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
S3Uri = Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\x00]+$", max_length=1024)]
