"""Where the ingest puts what it rejects: one S3 object per stream record (all its rejected rows with their
reasons), named by the record's content so a redelivered bad record lands on the same object."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger

from closecast.ingest import Quarantine, QuarantineEntry

logger = Logger(child=True)

# Objects stored at once: a batch of bad envelopes must not time the ingest function out.
CONCURRENCY = 8


def s3_quarantine(s3: Any, bucket: str, prefix: str, concurrency: int = CONCURRENCY) -> Quarantine:
    """A `Quarantine` storing entries under `s3://bucket/prefix`; it returns the sequence numbers of the records
    it could not store (the mapping delivers those again, so nothing is lost)."""

    def store(entry: QuarantineEntry) -> str | None:
        key = entry.key(prefix)
        try:
            body = json.dumps(entry.document()).encode()
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        except Exception:
            logger.exception("could not quarantine a record; it will be delivered again", extra={"key": key})
            return entry.record.sequence_number
        logger.warning("record quarantined", extra={"key": key, "reason": entry.reason})
        return None

    def quarantine(entries: Sequence[QuarantineEntry]) -> set[str]:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return {sequence for sequence in pool.map(store, entries) if sequence is not None}

    return quarantine
