"""Reading a day's predictions file (the CSV the inference function writes: `row_id, stock_id,
seconds_in_bucket, prediction` and `target` when known) back as rows, for the dashboard and any client that
wants predictions without S3 access. Standard library only (the layer carries no pandas)."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from closecast.errors import NotFound

REQUIRED = ("row_id", "stock_id", "seconds_in_bucket", "prediction")


class PredictionsFileError(NotFound):
    """The predictions file is missing or not in the expected form."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise PredictionsFileError(f"the predictions location {uri!r} is not an s3:// object")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def _number(text: str) -> float | None:
    if text == "":
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse(text: str) -> list[dict[str, Any]]:
    """The rows of a predictions CSV, typed; a missing target is None."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise PredictionsFileError(f"the predictions file lacks the column(s) {', '.join(missing)}")
    rows = []
    try:
        for row in reader:
            target = row.get("target")
            rows.append(
                {
                    "row_id": row["row_id"],
                    "stock_id": int(row["stock_id"]),
                    "seconds_in_bucket": int(row["seconds_in_bucket"]),
                    "prediction": _number(row["prediction"]),
                    "target": None if target is None else _number(target),
                }
            )
    except (TypeError, ValueError) as exc:
        raise PredictionsFileError(f"the predictions file has a malformed row: {exc}") from exc
    return rows


def read(s3: Any, uri: str) -> list[dict[str, Any]]:
    """Fetch and parse the predictions file at `uri`."""
    bucket, key = split_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        raise PredictionsFileError(f"the predictions file {uri} no longer exists") from exc
    return parse(body.decode("utf-8"))


def select(
    rows: list[dict[str, Any]], *, stock_id: int | None, seconds_in_bucket: int | None
) -> list[dict[str, Any]]:
    """The rows matching the filters, in (seconds_in_bucket, stock_id) order."""
    chosen = [
        r
        for r in rows
        if (stock_id is None or r["stock_id"] == stock_id)
        and (seconds_in_bucket is None or r["seconds_in_bucket"] == seconds_in_bucket)
    ]
    return sorted(chosen, key=lambda r: (r["seconds_in_bucket"], r["stock_id"]))
