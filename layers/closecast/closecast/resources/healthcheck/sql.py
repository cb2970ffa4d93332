"""The one statement of /healthcheck/."""

from __future__ import annotations

from closecast.db.data_api import DataApi


def ping(api: DataApi) -> None:
    """One round trip to PostgreSQL through the Data API (raises when it cannot be made)."""
    api.execute("SELECT 1 AS one")
