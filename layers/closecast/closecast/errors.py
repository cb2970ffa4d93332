"""Domain errors. The API turns each into one HTTP status in `closecast.api.common`; nothing matches on text."""

from __future__ import annotations

from typing import Any


class CloseCastError(Exception):
    """Base of the errors the product raises on purpose."""


class InvalidInput(CloseCastError):
    """The caller sent something invalid; `field` names it."""

    def __init__(self, message: str, *, field: str | None = None, location: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.location = location

    def detail(self) -> dict[str, Any]:
        return {"field": self.field, "location": self.location, "message": self.message}


class ConfigurationError(CloseCastError):
    """A deployment fault, never retried: the function's environment is missing or has an invalid variable, or
    the Data API refuses the cluster, secret, database or permissions it was given (`code` is then the AWS
    error code)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotFound(CloseCastError):
    """The resource asked for does not exist."""


class Conflict(CloseCastError):
    """The request conflicts with what is stored (e.g. a duplicate natural key)."""


class ServiceUnavailable(CloseCastError):
    """A service the request needs (the jobs queue) is not reachable now; the caller may retry."""
