"""Models of /champions/, /promotions/ and PUT /models/{model_id}/champion."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from closecast.api.types import DateId, RecordId, Text


class ChampionRequest(BaseModel):
    """PUT /models/{model_id}/champion: make this model the champion of its name (a manual promotion)."""

    model_config = ConfigDict(extra="forbid")
    reason: Text | None = Field(default=None, max_length=1000)


class PromotionRecord(BaseModel):
    id: int
    name: str
    model_id: RecordId
    previous_model_id: RecordId | None
    decision: Literal["promoted", "kept"]
    decided_by: Literal["rule", "manual"]
    date_id: DateId | None
    evidence: dict[str, Any]
    job_id: str | None
    created_at: dt.datetime


class ChampionRecord(BaseModel):
    name: str
    model_id: RecordId
    promotion_id: int | None
    version: int
    artifact_uri: str
    metadata_uri: str | None
    last_trained_date_id: DateId | None
    updated_at: dt.datetime
