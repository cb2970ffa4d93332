"""Every S3 location a client registers (a model's artifact and metadata, a day's predictions) must lie inside
the stack's own bucket: the functions that later read it may read that bucket only, and a record pointing
elsewhere would be a model nobody can load (or a way to make the service fetch someone else's object)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from closecast.errors import ConfigurationError


def require_in_bucket(bucket: str | None, locations: Mapping[str, str | None]) -> None:
    """Refuse (422 naming each field) any `s3://` location outside `s3://<bucket>/`; None values are absent
    optional fields. `bucket` comes from the function's configuration (BUCKET_NAME)."""
    if not bucket:
        raise ConfigurationError("BUCKET_NAME is not set: locations cannot be checked")
    prefix = f"s3://{bucket}/"
    errors = [
        {
            "loc": ("body", field),
            "msg": f"must be a key in the stack's bucket ({prefix}...)",
            "type": "value_error",
        }
        for field, uri in locations.items()
        if uri is not None and not (uri.startswith(prefix) and len(uri) > len(prefix))
    ]
    if errors:
        raise RequestValidationError(errors)
