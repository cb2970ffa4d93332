"""Submitting a job: its row, then its message on the queue of its kind (train and store_day jobs go to the
train function's queue, inference jobs to the inference function's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from closecast.db.data_api import DataApi
from closecast.errors import ServiceUnavailable
from closecast.resources.jobs import sql


@dataclass(frozen=True)
class JobQueues:
    sqs: Any
    train_url: str
    inference_url: str

    def url_for(self, kind: str) -> str:
        return self.inference_url if kind == "inference" else self.train_url

    def send(self, job: dict[str, Any]) -> None:
        body = json.dumps({"job_id": job["id"], "kind": job["kind"]})
        self.sqs.send_message(QueueUrl=self.url_for(job["kind"]), MessageBody=body)


def submit(
    api: DataApi, queues: JobQueues, kind: str, params: dict[str, Any], client_token: str | None
) -> dict[str, Any]:
    """Create the job and queue it; return it. A retried submission with the same client token returns the
    job already created, and sends its message again only while it is still queued (a job runs once: the
    function claims it queued -> running, so a second message for it changes nothing)."""
    job, created = sql.create(api, kind, params, client_token)
    if job["status"] != "queued":
        return job
    try:
        queues.send(job)
    except Exception as exc:
        if created and client_token is None:  # nobody can retry this one: end it with the reason
            sql.fail_queued(api, job["id"], f"the job could not be queued: {exc}")
        raise ServiceUnavailable("the jobs queue is not available; retry shortly") from exc
    return job
