"""Starting the daily chain (all SQL on `daily_chain`).

When every row of a day has its revealed target, one `daily` job is created and queued; its steps (store the
day, update the champion, evaluate and promote or keep, predict the next day) run in the train function
(closecast_ml.chain). The ingest starts it as soon as it writes the last targets of a day; a schedule after the
close sweeps for complete days that have no chain (and re-sends the message of a chain still queued), so a
lost message or a failed ingest hook only delays the chain. `daily_chain` has one row per day: targets that
arrive twice, or the schedule and the ingest at once, start one chain; a chain whose job failed may be
started again (`attempts`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from closecast.db.data_api import DataApi
from closecast.resources.champions import sql as champions
from closecast.resources.jobs import sql as jobs

if TYPE_CHECKING:
    from closecast.config import ChainConfig

logger = Logger(child=True)

# A day is complete when it has rows, every row has a target, and no target lacks its row (targets for rows
# that never arrived mean the day is missing rows: no chain until they come).
_COMPLETE_SQL = (
    "SELECT s.date_id, count(*) AS n_rows, count(COALESCE(r.target, s.target)) AS n_with_target, "
    "(SELECT count(*) FROM revealed_target AS t WHERE t.date_id = s.date_id) AS n_revealed "
    "FROM stock_data AS s LEFT JOIN revealed_target AS r ON r.date_id = s.date_id "
    "AND r.seconds_in_bucket = s.seconds_in_bucket AND r.stock_id = s.stock_id "
    "WHERE s.date_id = ANY(CAST(:dates AS integer[])) GROUP BY s.date_id ORDER BY s.date_id"
)

# The same test, for the ingest's hook (which needs only which days are complete, after every write): a day
# still waiting for targets (every day the stream is writing) is settled by its first row without one, where
# counting reads every row of the day. CASE makes the order sure: the targets are counted only for a day whose
# every row has one.
_COMPLETE_DAYS_SQL = (
    "SELECT d.date_id FROM unnest(CAST(:dates AS integer[])) AS d(date_id) "
    "WHERE CASE WHEN EXISTS (SELECT 1 FROM stock_data AS s WHERE s.date_id = d.date_id) "
    "AND NOT EXISTS (SELECT 1 FROM stock_data AS s LEFT JOIN revealed_target AS r ON r.date_id = s.date_id "
    "AND r.seconds_in_bucket = s.seconds_in_bucket AND r.stock_id = s.stock_id "
    "WHERE s.date_id = d.date_id AND COALESCE(r.target, s.target) IS NULL) "
    "THEN (SELECT count(*) FROM revealed_target AS t WHERE t.date_id = d.date_id) "
    "<= (SELECT count(*) FROM stock_data AS s WHERE s.date_id = d.date_id) "
    "ELSE false END "
    "ORDER BY d.date_id"
)

# Days with revealed targets and no chain yet (what the schedule looks at).
_UNCHAINED_SQL = (
    "SELECT DISTINCT t.date_id FROM revealed_target AS t LEFT JOIN daily_chain AS c ON c.date_id = t.date_id "
    "WHERE c.date_id IS NULL ORDER BY t.date_id"
)

# The chain's row and its job in one statement: the job exists only if this call claimed the day (first
# chain, or the previous chain's job failed).
_START_SQL = (
    "WITH claimed AS (INSERT INTO daily_chain (date_id, trigger, job_id) VALUES (:date_id, :trigger, "
    "CAST(:job_id AS uuid)) ON CONFLICT (date_id) DO UPDATE SET job_id = EXCLUDED.job_id, "
    "trigger = EXCLUDED.trigger, attempts = daily_chain.attempts + 1, updated_at = now() "
    "WHERE EXISTS (SELECT 1 FROM job WHERE job.id = daily_chain.job_id AND job.status = 'failed') "
    "RETURNING date_id) "
    "INSERT INTO job (id, kind, status, params) SELECT CAST(:job_id AS uuid), 'daily', 'queued', "
    f"CAST(:params AS jsonb) FROM claimed RETURNING {jobs.COLUMNS}"
)

# Chains whose job has waited in the queue too long (its message was lost): sent again.
_STUCK_SQL = (
    "SELECT c.date_id, c.job_id::text AS job_id FROM daily_chain AS c JOIN job AS j ON j.id = c.job_id "
    "WHERE j.status = 'queued' AND j.updated_at < now() - make_interval(secs => :seconds) ORDER BY c.date_id"
)


@dataclass(frozen=True)
class DayCompleteness:
    date_id: int
    n_rows: int
    n_with_target: int
    n_revealed: int

    @property
    def complete(self) -> bool:
        return self.n_rows > 0 and self.n_with_target == self.n_rows and self.n_revealed <= self.n_rows

    def reason(self) -> str:
        if self.complete:
            return "complete"
        if self.n_revealed > self.n_rows:
            return f"{self.n_revealed} targets for {self.n_rows} rows: rows are missing"
        return f"{self.n_rows - self.n_with_target} of {self.n_rows} rows have no target yet"


def completeness(api: DataApi, date_ids: Iterable[int]) -> dict[int, DayCompleteness]:
    dates = sorted(set(date_ids))
    if not dates:
        return {}
    rows = api.execute(_COMPLETE_SQL, {"dates": "{" + ",".join(map(str, dates)) + "}"}).records
    found = {
        int(r["date_id"]): DayCompleteness(
            int(r["date_id"]), int(r["n_rows"]), int(r["n_with_target"]), int(r["n_revealed"])
        )
        for r in rows
    }
    for date_id in dates:  # targets without any row of their day
        if date_id not in found:
            n = api.execute(
                "SELECT count(*) AS n FROM revealed_target WHERE date_id = :date_id", {"date_id": date_id}
            ).records[0]["n"]
            found[date_id] = DayCompleteness(date_id, 0, 0, int(n))
    return found


def complete_days(api: DataApi, date_ids: Iterable[int]) -> list[int]:
    """Those of `date_ids` that are complete (`DayCompleteness.complete`), in order, without counting the
    rows of the others."""
    dates = sorted(set(date_ids))
    if not dates:
        return []
    rows = api.execute(_COMPLETE_DAYS_SQL, {"dates": "{" + ",".join(map(str, dates)) + "}"}).records
    return [int(r["date_id"]) for r in rows]


def start(
    api: DataApi, sqs: Any, queue_url: str, date_id: int, *, trigger: str, model_name: str
) -> dict[str, Any] | None:
    """Create and queue the day's chain; None when the day already has one (running, done, or queued)."""
    job_id = str(uuid.uuid4())
    params = {"date_id": date_id, "model_name": model_name}
    rows = api.execute(
        _START_SQL, {"date_id": date_id, "trigger": trigger, "job_id": job_id, "params": json.dumps(params)}
    ).records
    if not rows:
        return None
    job = rows[0]
    send(sqs, queue_url, job["id"])
    return job


def send(sqs: Any, queue_url: str, job_id: str) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"job_id": job_id, "kind": "daily"}))


def after_targets(
    api: DataApi, sqs: Any, queue_url: str, date_ids: Iterable[int], *, model_name: str
) -> list[dict[str, Any]]:
    """The ingest's hook after writing revealed targets: a chain for each of those days now complete."""
    started = []
    for date_id in complete_days(api, date_ids):
        job = start(api, sqs, queue_url, date_id, trigger="targets", model_name=model_name)
        if job is not None:
            started.append(job)
    return started


def sweep(
    api: DataApi, sqs: Any, queue_url: str, *, model_name: str, stuck_seconds: int = 900
) -> dict[str, Any]:
    """The schedule's fallback: a chain for every complete day without one that is newer than what the champion
    was trained on; the message again for chains queued longer than `stuck_seconds`. Incomplete days are listed
    with the reason."""
    current = champions.champion(api, model_name)
    known = (
        -1
        if current is None or current["last_trained_date_id"] is None
        else int(current["last_trained_date_id"])
    )
    candidates = [int(r["date_id"]) for r in api.execute(_UNCHAINED_SQL).records if int(r["date_id"]) > known]
    started, incomplete = [], {}
    for day in completeness(api, candidates).values():
        if not day.complete:
            incomplete[str(day.date_id)] = day.reason()
            continue
        job = start(api, sqs, queue_url, day.date_id, trigger="schedule", model_name=model_name)
        if job is not None:
            started.append({"date_id": day.date_id, "job_id": job["id"]})
    resent = []
    for row in api.execute(_STUCK_SQL, {"seconds": stuck_seconds}).records:
        send(sqs, queue_url, str(row["job_id"]))
        resent.append({"date_id": int(row["date_id"]), "job_id": row["job_id"]})
    return {"started": started, "resent": resent, "incomplete": incomplete}


def chain_of(api: DataApi, date_id: int) -> dict[str, Any] | None:
    rows = api.execute(
        "SELECT date_id, trigger, job_id::text AS job_id, attempts, created_at, updated_at FROM daily_chain "
        "WHERE date_id = :date_id",
        {"date_id": date_id},
    ).records
    return rows[0] if rows else None


def start_after_ingest(api: DataApi, sqs: Any, config: ChainConfig, date_ids: Iterable[int]) -> None:
    """The ingest's trigger: each of `date_ids` now complete (rows and targets) starts its daily chain. Never
    fails the batch that wrote them: the schedule's sweep starts any chain this misses."""
    days = sorted(set(date_ids))
    if not config.chain_queue_url or not days:
        return
    try:
        started = after_targets(api, sqs, config.chain_queue_url, days, model_name=config.model_name)
    except Exception:
        logger.exception("could not start the daily chain; the schedule will", extra={"date_ids": days})
        return
    for job in started:
        logger.info("daily chain started", extra={"job_id": job["id"], "params": job["params"]})
