"""Field types of the API models, bounded to what the database columns hold, so that a value PostgreSQL
would refuse is a 422 naming its field rather than a database error."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from closecast.errors import Unprocessable
from closecast.market.schema import INT4_MAX, MAX_DATE_ID, MAX_STOCK_ID

T = TypeVar("T")

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


class StrictBody(BaseModel):
    """Base of every request body: no coercion (`true` is not 1, `"5"` is not 5) and no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_text(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as text, YYYY-MM-DD")
    return value


# A calendar date in a JSON body: only `"YYYY-MM-DD"` (never a number of seconds, never a timestamp).
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_text), Field(strict=False)]
# A key in the stack's bucket, as the original project's clients send it (`trained_models/m.pickle`).
BucketKey = Annotated[
    str, Field(min_length=1, max_length=1000, pattern=r"^[A-Za-z0-9!_.*'()/=+-][A-Za-z0-9!_.*'()/=+ -]*$")
]
ModelName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


def bucket_uri(key: str | None, bucket: str) -> str | None:
    """`s3://<bucket>/<key>` of a key in the stack's bucket."""
    return None if key is None else f"s3://{bucket}/{key}"


def bucket_key(uri: str, bucket: str) -> str:
    """The key of a URI in the stack's bucket; a URI elsewhere stays as it is."""
    prefix = f"s3://{bucket}/"
    return uri[len(prefix) :] if uri.startswith(prefix) else uri


def same_or_either(
    ours: T | None, theirs: T | None, name: str, other: str, optional: bool = False
) -> T | None:
    """One value given under closecast's name or the original's: either one, or both when equal."""
    if ours is not None and theirs is not None and ours != theirs:
        raise Unprocessable(f"`{name}` and `{other}` differ; give one", field=other)
    value = ours if ours is not None else theirs
    if value is None and not optional:
        raise Unprocessable(f"give `{name}` (or `{other}`)", field=name)
    return value
