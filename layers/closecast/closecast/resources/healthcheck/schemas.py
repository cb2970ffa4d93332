"""Models of /healthcheck/."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["reachable"]


class Unhealthy(BaseModel):
    status: Literal["unavailable"]
    database: Literal["unreachable"]
    message: str
