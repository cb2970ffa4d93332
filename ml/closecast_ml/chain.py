"""The daily chain, run by the train function: each step is a job of its own (visible at /jobs/), run here in
turn; the chain's job ends with every step's id and outcome, or failed with the step that failed and why.

    store_day  the day (rows + revealed targets) into the day store
    train      the daily update of the champion with it (closecast_ml.training.update, its guard included), or
               the scheduled refit on the whole history when `training.refit_due` says so (as the backtest)
    promote    evaluate: an update becomes champion only if it is within the guard's tolerance
               (`training.MIN_GAIN`) of the champion on the recent (guard) days and predicts the day sanely; a
               scheduled refit when its early-stopping fit beat zero on its held-out days; either way the
               decision is recorded with its evidence
    inference  the next day with whichever is champion, when that day's rows are all in (otherwise the
               streaming predictor is predicting it live, snapshot by snapshot)

Nothing changes the champion but the promote step, and only after every earlier step succeeded: a failed step
leaves the champion as it was. A transient fault (database resuming, S3 unavailable) puts the chain back on
its queue; steps already done are found again by their client tokens and not redone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from closecast.resources.champions import sql as champions
from closecast.resources.jobs import sql as jobs
from closecast.resources.jobs.schemas import DailyParams, PromoteParams
from closecast.resources.models import sql as models
from closecast_ml import runner, training
from closecast_ml.runner import JobFailed, Services

ALL_KINDS = ("train", "inference", "store_day", "daily", "promote")


def _step(services: Services, chain_id: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one step as its own job (created once per chain: a redelivered chain finds it by its token)."""
    try:
        job, _ = jobs.create(services.api, kind, params, f"chain-{chain_id}-{kind}")
    except Exception as exc:
        if type(exc).__name__ == "Conflict":
            raise JobFailed(f"step {kind}: {exc}") from exc
        raise
    if job["status"] in ("queued", "running"):
        job = runner.run_job(services, str(job["id"]), ALL_KINDS)
    if job.get("status") != "succeeded":
        raise JobFailed(f"step {kind} (job {job.get('id')}) failed: {job.get('error') or job.get('status')}")
    return job


def run_daily(services: Services, job_id: str, params: Any) -> dict[str, Any]:
    assert isinstance(params, DailyParams)
    api, day, name = services.api, params.date_id, params.model_name
    steps: dict[str, Any] = {}
    current = champions.champion(api, name)
    if current is None:
        raise JobFailed(f"model {name!r} has no champion: PUT /models/{{id}}/champion names one")
    champion_id = int(current["model_id"])
    known = current.get("last_trained_date_id")
    if known is not None and day <= int(known):
        return {
            "date_id": day,
            "model_name": name,
            "champion_before": champion_id,
            "champion_after": champion_id,
            "skipped": f"champion {champion_id} was already trained through day {known}: nothing to learn",
        }

    stored = _step(services, job_id, "store_day", {"date_id": day})
    steps["store_day"] = {"job_id": stored["id"], "written": len(stored["result"].get("written") or [])}
    if day in (stored["result"].get("incomplete") or []):
        raise JobFailed(f"day {day} is not complete (rows without targets): nothing trained or promoted")

    trained = _step(services, job_id, "train", {"model_name": name, "parent_id": champion_id, "date_id": day})
    result = trained["result"]
    candidate = None if result.get("kept_parent") else int(result["model_id"])
    steps["train"] = {
        "job_id": trained["id"],
        "candidate_id": candidate,
        "kept_parent": bool(candidate is None),
    }

    promote_params: dict[str, Any] = {
        "model_name": name,
        "date_id": day,
        "champion_id": champion_id,
        "train_job_id": str(trained["id"]),
    }
    if candidate is not None:
        promote_params["candidate_id"] = candidate
    promoted = _step(services, job_id, "promote", promote_params)
    steps["promote"] = {"job_id": promoted["id"], **promoted["result"]}

    after = champions.champion(api, name)
    serving = int(after["model_id"]) if after else champion_id
    next_day = day + 1
    if _day_is_in(services, next_day):
        # centred, as the live predictions are served (said here, not left to the job's default)
        inferred = _step(
            services, job_id, "inference", {"model_id": serving, "date_id": next_day, "center": True}
        )
        steps["inference"] = {
            "job_id": inferred["id"],
            "date_id": next_day,
            "mae": inferred["result"].get("mae"),
        }
    else:
        steps["inference"] = {
            "skipped": f"day {next_day}'s rows are not all in: the streaming predictor predicts it live"
        }
    return {
        "date_id": day,
        "model_name": name,
        "champion_before": champion_id,
        "champion_after": serving,
        "steps": steps,
    }


def _day_is_in(services: Services, date_id: int) -> bool:
    """The day's last snapshot is stored (its rows stream in time order)."""
    row = services.api.execute(
        "SELECT count(*) AS n, max(seconds_in_bucket) AS last FROM stock_data WHERE date_id = :date_id",
        {"date_id": date_id},
    ).records[0]
    return int(row["n"]) > 0 and row["last"] == 540


def _mae(values: np.ndarray, target: np.ndarray) -> float:
    known = ~np.isnan(target)
    return float(np.mean(np.abs(values[known] - target[known]))) if known.any() else float("nan")


def run_promote(services: Services, job_id: str, params: Any) -> dict[str, Any]:
    assert isinstance(params, PromoteParams)
    api, name = services.api, params.model_name
    current = champions.champion(api, name)
    if current is None or int(current["model_id"]) != params.champion_id:
        now = None if current is None else current["model_id"]
        raise JobFailed(
            f"the champion of {name!r} changed while the chain ran (was {params.champion_id}, now {now}): "
            "the candidate is not promoted over it"
        )
    if params.candidate_id is None:
        train = jobs.get(api, params.train_job_id) if params.train_job_id else None
        kept = {
            "rule": "the daily update's guard",
            "update": ((train or {}).get("result") or {}).get("evidence"),
        }
        record = champions.record_kept(
            api,
            name=name,
            model_id=params.champion_id,
            evidence=kept,
            date_id=params.date_id,
            job_id=job_id,
        )
        return {
            "decision": "kept",
            "promotion_id": record["id"],
            "champion_id": params.champion_id,
            "reason": "the update's guard kept the champion (the continuation was worse than the tolerance on the guard days)",
        }

    candidate_record = models.get_model(api, params.candidate_id)
    if candidate_record is None:
        raise JobFailed(f"candidate model {params.candidate_id} does not exist")
    champion_record = models.get_model(api, params.champion_id)
    assert champion_record is not None
    candidate = runner.load_artifact(services, candidate_record)  # JobFailed on an unusable file
    champion = runner.load_artifact(services, champion_record)

    rows, _ = runner.day_rows(services, params.date_id)
    target = rows["target"].to_numpy(dtype="float64")
    features = rows.drop(columns=["target"])
    candidate_values = np.asarray(candidate.predict(features, center=True), dtype="float64")
    if not np.isfinite(candidate_values).all():
        raise JobFailed(f"candidate {params.candidate_id} predicts non-finite values on day {params.date_id}")
    trained_as = candidate_record.get("training") or {}
    if trained_as.get("strategy") == "scheduled-refit":
        return _promote_refit(services, job_id, params, candidate_record, candidate_values, target)
    update = trained_as.get("evidence") or {}
    guard_champion, guard_candidate = update.get("parent_mae"), update.get("candidate_mae")
    evidence: dict[str, Any] = {
        "rule": f"promote when the candidate's MAE on the guard days (out of sample for it) is at most the "
        f"champion's x {1.0 - training.MIN_GAIN:g} (the update's own guard, training.MIN_GAIN)",
        "guard_days": update.get("guard_days"),
        "guard_champion_mae": guard_champion,
        "guard_candidate_mae": guard_candidate,
        "guard_zero_mae": update.get("zero_mae"),
        "day": params.date_id,
        "day_champion_mae": round(
            _mae(np.asarray(champion.predict(features, center=True), dtype="float64"), target), 6
        ),
        "day_candidate_mae_in_sample": round(_mae(candidate_values, target), 6),
        "train_job_id": params.train_job_id,
    }
    if guard_champion is None or guard_candidate is None:
        better = False
        evidence["decision"] = "kept: the update recorded no guard evaluation (a one-day window)"
    else:
        better = float(guard_candidate) <= float(guard_champion) * (1.0 - training.MIN_GAIN)
        evidence["decision"] = (
            "promoted: within the guard's tolerance on the guard days"
            if better
            else "kept: worse than the tolerance on the guard days"
        )
    if not better:
        record = champions.record_kept(
            api,
            name=name,
            model_id=params.candidate_id,
            evidence=evidence,
            date_id=params.date_id,
            job_id=job_id,
        )
        return {
            "decision": "kept",
            "promotion_id": record["id"],
            "champion_id": params.champion_id,
            "candidate_id": params.candidate_id,
            "evidence": evidence,
        }
    record = champions.promote(
        api,
        name=name,
        model_id=params.candidate_id,
        decided_by="rule",
        evidence=evidence,
        previous_model_id=params.champion_id,
        check_previous=True,
        date_id=params.date_id,
        job_id=job_id,
    )
    if record is None:
        raise JobFailed(f"the champion of {name!r} changed while the candidate was evaluated: not promoted")
    return {
        "decision": "promoted",
        "promotion_id": record["id"],
        "champion_id": params.candidate_id,
        "previous_champion_id": params.champion_id,
        "evidence": evidence,
    }


def _promote_refit(
    services: Services,
    job_id: str,
    params: PromoteParams,
    candidate_record: dict[str, Any],
    candidate_values: np.ndarray,
    target: np.ndarray,
) -> dict[str, Any]:
    """The scheduled refit replaces the champion by schedule, as the backtest's `daily` does (no guard: the
    champion has trained on the recent days the guard would score, so it would always look better there), when
    its early-stopping fit beat predicting zero on the days it held out."""
    metrics = candidate_record.get("metrics") or {}
    valid_mae, valid_zero = metrics.get("mae"), metrics.get("zero_mae")
    evidence: dict[str, Any] = {
        "rule": "a scheduled refit is promoted when its early-stopping fit beat predicting zero on its held-out days",
        "valid_days": metrics.get("days"),
        "valid_mae": valid_mae,
        "valid_zero_mae": valid_zero,
        "day": params.date_id,
        "day_candidate_mae_in_sample": round(_mae(candidate_values, target), 6),
        "train_job_id": params.train_job_id,
    }
    if valid_mae is None or valid_zero is None or not float(valid_mae) < float(valid_zero):
        evidence["decision"] = "kept: the refit did not beat predicting zero on its held-out days"
        record = champions.record_kept(
            services.api,
            name=params.model_name,
            model_id=int(candidate_record["id"]),
            evidence=evidence,
            date_id=params.date_id,
            job_id=job_id,
        )
        return {
            "decision": "kept",
            "promotion_id": record["id"],
            "champion_id": params.champion_id,
            "candidate_id": candidate_record["id"],
            "evidence": evidence,
        }
    evidence["decision"] = "promoted: the scheduled refit"
    record = champions.promote(
        services.api,
        name=params.model_name,
        model_id=int(candidate_record["id"]),
        decided_by="rule",
        evidence=evidence,
        previous_model_id=params.champion_id,
        check_previous=True,
        date_id=params.date_id,
        job_id=job_id,
    )
    if record is None:
        raise JobFailed(
            f"the champion of {params.model_name!r} changed while the refit was evaluated: not promoted"
        )
    return {
        "decision": "promoted",
        "promotion_id": record["id"],
        "champion_id": candidate_record["id"],
        "previous_champion_id": params.champion_id,
        "evidence": evidence,
    }


RUNNERS = {"daily": run_daily, "promote": run_promote}
