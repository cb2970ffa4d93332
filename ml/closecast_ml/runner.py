"""Running jobs inside the train and inference functions (container images), and in-process.

A job row (closecast.resources.jobs) is claimed queued -> running, its parameters parsed with the same models
the API validated them with, the work done, and the row ended succeeded (with a result) or failed (with a
reason a person understands). Files go to S3 first and the registry row last, so a failed job registers
nothing. A transient fault (the database resuming, S3 unavailable) puts the job back to `queued` and reports
the message as a batch item failure, so SQS delivers it again.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from aws_lambda_powertools import Logger
from pydantic import ValidationError

from closecast import day_store as book
from closecast.config import JobsConfig
from closecast.db.data_api import DataApi
from closecast.db.errors import TransientDatabaseError
from closecast.resources.jobs import sql as jobs
from closecast.resources.jobs.schemas import (
    PARAMS_OF_KIND,
    InferenceJobCreate,
    InferenceParams,
    StoreDayJobCreate,
    StoreDayParams,
    TrainJobCreate,
    TrainParams,
    split_create,
)
from closecast.resources.model_inferences import sql as inferences
from closecast.resources.models import sql as models
from closecast_ml import training
from closecast_ml.daystore import DayStore
from closecast_ml.model import METADATA_FILE, MODEL_FILE, ArtifactError, ModelArtifact

logger = Logger(child=True)


class JobFailed(Exception):
    """The job cannot succeed as asked (bad input, missing data, unusable artifact): it ends `failed` with this
    message, and nothing is registered."""


class Retry(Exception):
    """A transient fault: the job goes back to `queued` and its message is delivered again."""


@dataclass
class Services:
    api: DataApi
    s3: Any
    config: JobsConfig

    @property
    def store(self) -> DayStore:
        return DayStore(self.api, self.s3, self.config.bucket, self.config.days_prefix)


# ------------------------------------------------------------------ entry points


def handle(event: dict[str, Any], services: Services, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The function's whole handler: an SQS batch (partial batch response), `{"job_id"}` (run that queued job),
    or a direct job `{"kind", ...parameters}` as `sam local invoke -e events/train/*.json` sends (the job row
    is created and run at once; the answer is the finished job)."""
    if "Records" in event:
        failures = []
        for record in event["Records"]:
            try:
                body = json.loads(record.get("body") or "")
                job_id = str(body["job_id"])
            except (ValueError, KeyError, TypeError):
                logger.error("job message without a job_id dropped", extra={"body": record.get("body")})
                continue
            try:
                run_job(services, job_id, kinds)
            except Retry:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}
    if "job_id" in event:
        return run_job(services, str(event["job_id"]), kinds)
    body = _direct_job(event, kinds)
    kind, params, token = split_create(body)
    job, _ = jobs.create(services.api, kind, params, token)
    return run_job(services, str(job["id"]), kinds)


def runner_of(kind: str) -> Callable[[Services, str, Any], dict[str, Any]]:
    """The function that runs a job of `kind` (the daily chain's own kinds live in closecast_ml.chain)."""
    if kind in RUNNERS:
        return RUNNERS[kind]
    from closecast_ml import chain  # imports this module: loaded on first use

    return chain.RUNNERS[kind]


def _direct_job(
    event: dict[str, Any], kinds: tuple[str, ...]
) -> TrainJobCreate | InferenceJobCreate | StoreDayJobCreate:
    models_of = {"train": TrainJobCreate, "inference": InferenceJobCreate, "store_day": StoreDayJobCreate}
    kind = event.get("kind")
    if kind not in kinds:
        raise ValueError(f"this function runs jobs of kind {', '.join(kinds)}; the event has kind {kind!r}")
    return models_of[str(kind)].model_validate(event)


def run_job(services: Services, job_id: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Claim, run and end one job; returns the job row as it ended (or as found, if another delivery has it)."""
    api = services.api
    try:
        job = jobs.claim(api, job_id, stale_seconds=services.config.stale_job_seconds)
    except TransientDatabaseError as exc:
        raise Retry(str(exc)) from exc
    if job is None:
        found = jobs.get(api, job_id)
        logger.info("job not claimable (unknown, running or finished)", extra={"job_id": job_id})
        return found or {"id": job_id, "status": "unknown"}
    started = time.perf_counter()
    try:
        if job["kind"] not in kinds:
            raise JobFailed(f"a {job['kind']} job reached the function for {', '.join(kinds)}")
        try:
            params = PARAMS_OF_KIND[job["kind"]].model_validate(job["params"])
        except ValidationError as exc:
            raise JobFailed(f"invalid parameters: {_validation_text(exc)}") from exc
        result = runner_of(job["kind"])(services, job_id, params)
        result["seconds"] = round(time.perf_counter() - started, 3)
    except JobFailed as exc:
        logger.warning("job failed", extra={"job_id": job_id, "reason": str(exc)})
        return jobs.fail(api, job_id, str(exc)) or job
    except (TransientDatabaseError, Retry) as exc:
        logger.warning("transient fault; the job goes back to the queue", extra={"job_id": job_id})
        _release(api, job_id, str(exc))
        raise Retry(str(exc)) from exc
    except Exception as exc:
        if _is_transient_aws(exc):
            _release(api, job_id, str(exc))
            raise Retry(str(exc)) from exc
        logger.exception("job failed with an unexpected error", extra={"job_id": job_id})
        return jobs.fail(api, job_id, f"internal error: {type(exc).__name__}: {exc}") or job
    return jobs.succeed(api, job_id, result) or job


def _release(api: DataApi, job_id: str, error: str) -> None:
    try:
        jobs.release(api, job_id, error)
    except Exception:  # the stale-claim timeout frees it anyway
        logger.exception("could not release the job", extra={"job_id": job_id})


def _is_transient_aws(exc: Exception) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    }:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        code = str((response.get("Error") or {}).get("Code") or "")
        return int(status) >= 500 or code in {"SlowDown", "ThrottlingException", "RequestTimeout"}
    return False


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors(include_url=False)
    )


# ------------------------------------------------------------------ artifacts


def _s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise JobFailed(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def load_artifact(services: Services, record: dict[str, Any]) -> ModelArtifact:
    """The registered model's files from S3 as a ModelArtifact; a missing or corrupt file fails the job."""
    uris = {"model": record["artifact_uri"], "metadata": record.get("metadata_uri")}
    if not uris["metadata"]:
        raise JobFailed(f"model {record['id']} has no metadata file registered; it cannot be loaded")
    blobs: dict[str, bytes] = {}
    for name, uri in uris.items():
        bucket, key = _split_uri(str(uri))
        try:
            blobs[name] = services.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _is_transient_aws(exc):
                raise
            raise JobFailed(f"model {record['id']}: its {name} file {uri} cannot be read ({exc})") from exc
    try:
        return ModelArtifact.from_bytes(blobs["model"], blobs["metadata"])
    except ArtifactError as exc:
        raise JobFailed(f"model {record['id']}: its artifact at {uris['model']} is unusable: {exc}") from exc


def _model_or_fail(services: Services, model_id: int, role: str) -> dict[str, Any]:
    record = models.get_model(services.api, model_id)
    if record is None:
        raise JobFailed(f"{role + ' ' if role else ''}model {model_id} does not exist")
    return record


# ------------------------------------------------------------------ store_day


def run_store_day(services: Services, job_id: str, params: Any) -> dict[str, Any]:
    assert isinstance(params, StoreDayParams)
    first, last = params.date_range()
    report = services.store.sync(first, last)
    return {"date_range": [first, last], **report.as_dict()}


# ------------------------------------------------------------------ train


def _training_days(services: Services, first: int, last: int, window: int | None) -> list[book.StoredDay]:
    """The stored days to train on, after writing missing or stale ones from the database. A refit: the
    selected days. A daily update: the selected days plus earlier ones up to the parent's window."""
    sync_first = first if window is None else max(0, first - 2 * window)
    report = services.store.sync(sync_first, last)
    selected = services.store.stored(first, last)
    if not selected:
        incomplete = [d for d in report.incomplete if first <= d <= last]
        hint = f" (days with rows but not every target yet: {incomplete})" if incomplete else ""
        raise JobFailed(f"no complete day (rows with their targets) in date_id {first}..{last}{hint}")
    if window is None:
        return selected
    earlier = [d for d in services.store.stored(sync_first, last) if d.date_id < first]
    keep = max(0, window - len(selected))
    return (earlier[-keep:] if keep else []) + selected


def run_train(services: Services, job_id: str, params: Any) -> dict[str, Any]:
    assert isinstance(params, TrainParams)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    parent: ModelArtifact | None = None
    parent_record: dict[str, Any] | None = None
    if params.parent_id is not None:
        parent_record = _model_or_fail(services, params.parent_id, "parent")
        parent = load_artifact(services, parent_record)
        # the child's lineage names its parent by registry id and file (closecast_ml.training.update reads them)
        parent.metadata["id"], parent.metadata["artifact_uri"] = (
            parent_record["id"],
            parent_record["artifact_uri"],
        )
        if params.feature_set is not None and params.feature_set != parent.feature_set:
            raise JobFailed(
                f"feature set {params.feature_set!r} differs from parent model {params.parent_id}'s "
                f"{parent.feature_set!r}; a daily update keeps the parent's features (refit without a parent "
                "to change them)"
            )
    first, last = params.date_range()
    # the scheduled refit (training.refit_due): a daily update whose parent's last fit from scratch is
    # REFIT_EVERY_DAYS old becomes a fit on the lineage's whole history, from its first day trained to the new one
    scheduled_refit = parent is not None and training.refit_due(parent, last)
    if scheduled_refit:
        assert parent is not None
        first = min([first, *(int(d) for d in parent.metadata.get("days_trained") or [])])
    window = training.update_window_days(parent) if parent is not None and not scheduled_refit else None
    days = _training_days(services, first, last, window)
    timings["sync"] = time.perf_counter() - clock
    clock = time.perf_counter()
    rows = services.store.read_days(days)
    timings["read"] = time.perf_counter() - clock
    clock = time.perf_counter()
    training_info: dict[str, Any]
    try:
        if parent is not None and not scheduled_refit:
            update = training.update(parent, rows)
            if update.kept_parent:
                # The guard found the continuation worse on the newest days: the parent stays the model and no
                # new version is registered (a model changes only on evidence).
                assert parent_record is not None
                return {
                    "model_id": parent_record["id"],
                    "kept_parent": True,
                    "parent_id": parent_record["id"],
                    "days_in_window": [d.date_id for d in days],
                    "evidence": _json_safe(update.evidence),
                    "timings": {k: round(v, 3) for k, v in timings.items()},
                }
            artifact = update.model
            training_info = {"strategy": "update", "kept_parent": False, "evidence": update.evidence}
        else:
            feature_set = params.feature_set or (parent.feature_set if parent is not None else "full")
            artifact = training.fit(rows, feature_set=feature_set, valid_days=params.valid_days)
            training_info = {"strategy": "refit"}
            if scheduled_refit:
                assert parent is not None
                training_info = {
                    "strategy": "scheduled-refit",
                    "reason": f"the parent's last fit from scratch (day {parent.metadata.get('refit_date_id')})"
                    f" is {training.REFIT_EVERY_DAYS} or more days before day {last}",
                }
    except (training.NoTrainingData, training.FeatureSetMismatch) as exc:
        raise JobFailed(str(exc)) from exc
    timings["fit"] = time.perf_counter() - clock
    clock = time.perf_counter()
    day_versions = {str(d.date_id): d.version for d in days}
    artifact.metadata["day_versions"] = day_versions
    artifact.metadata["job_id"] = job_id
    record = _register(services, job_id, params, artifact, parent_record, days, training_info)
    timings["register"] = time.perf_counter() - clock
    return {
        "model_id": record["id"],
        "name": record["name"],
        "version": record["version"],
        "artifact_uri": record["artifact_uri"],
        "metadata_uri": record["metadata_uri"],
        "parent_id": record["parent_id"],
        "feature_set": record["feature_set"],
        "days_trained": len(days),
        "first_date_id": days[0].date_id,
        "last_date_id": days[-1].date_id,
        "rows": len(rows),
        "training": {k: v for k, v in training_info.items() if k != "evidence"},
        "valid_metrics": artifact.metadata.get("valid_metrics"),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _register(
    services: Services,
    job_id: str,
    params: TrainParams,
    artifact: ModelArtifact,
    parent_record: dict[str, Any] | None,
    days: list[book.StoredDay],
    training_info: dict[str, Any],
) -> dict[str, Any]:
    """Model file and metadata under models/<name>/<version>/, then the row (only once both are written)."""
    bucket = services.config.bucket
    for _ in range(5):
        version = models.next_version(services.api, params.model_name)
        prefix = f"{services.config.models_prefix}{params.model_name}/{version}/"
        artifact.metadata["name"], artifact.metadata["version"] = params.model_name, version
        model_bytes, metadata_bytes = artifact.to_bytes()
        model_key, metadata_key = prefix + MODEL_FILE, prefix + METADATA_FILE
        services.s3.put_object(Bucket=bucket, Key=model_key, Body=model_bytes)
        services.s3.put_object(
            Bucket=bucket, Key=metadata_key, Body=metadata_bytes, ContentType="application/json"
        )
        record = models.register_model(
            services.api,
            {
                "name": params.model_name,
                "version": version,
                "artifact_uri": _s3_uri(bucket, model_key),
                "metadata_uri": _s3_uri(bucket, metadata_key),
                "parent_id": parent_record["id"] if parent_record else None,
                "last_trained_date_id": days[-1].date_id,
                "feature_set": artifact.feature_set,
                "params": _json_safe(artifact.metadata.get("params") or {}),
                "metrics": _json_safe(artifact.metadata.get("valid_metrics") or {}),
                "job_id": job_id,
                "days_trained": [d.date_id for d in days],
                "day_versions": {str(d.date_id): d.version for d in days},
                "training": _json_safe(training_info),
            },
        )
        if record is not None:
            return record
    raise JobFailed(f"could not register model {params.model_name!r}: its versions kept being taken")


def _json_safe(value: Any) -> Any:
    """Plain JSON values (numpy numbers to Python, NaN and infinities to None) for the jsonb columns."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------ inference


def day_rows(services: Services, date_id: int) -> tuple[pd.DataFrame, str]:
    """Day d's own rows: the stored day when it is current, else a paged Data API read (no target needed)."""
    stored = book.stored_day(services.api, date_id)
    source = book.day_sources(services.api, date_id, date_id).get(date_id)
    if stored is not None and (source is None or stored.source == source.signature):
        return services.store.read_day(stored), "day_store"
    if source is not None:
        return services.store.read_from_database(date_id), "database"
    raise JobFailed(f"no rows for date_id {date_id} (neither in the database nor in the day store)")


def run_inference(services: Services, job_id: str, params: Any) -> dict[str, Any]:
    assert isinstance(params, InferenceParams)
    clock = time.perf_counter()
    record = _model_or_fail(services, params.model_id, "")
    artifact = load_artifact(services, record)
    rows, origin = day_rows(services, params.date_id)
    read_s = time.perf_counter() - clock
    clock = time.perf_counter()
    targets = rows["target"].to_numpy(dtype="float64")
    predictions = np.asarray(
        artifact.predict(rows.drop(columns=["target"]), center=params.center), dtype="float64"
    )
    predict_s = time.perf_counter() - clock
    out = pd.DataFrame(
        {
            "row_id": rows["row_id"].to_numpy(),
            "stock_id": rows["stock_id"].to_numpy(),
            "seconds_in_bucket": rows["seconds_in_bucket"].to_numpy(),
            "prediction": predictions,
        }
    )
    known = ~np.isnan(targets)
    n_targets = int(known.sum())
    mae = zero_mae = None
    if n_targets:
        out["target"] = targets
        mae = float(np.mean(np.abs(predictions[known] - targets[known])))
        zero_mae = float(np.mean(np.abs(targets[known])))
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, float_format="%.6f")
    bucket = services.config.bucket
    key = f"{services.config.predictions_prefix}{record['name']}/{record['version']}/{params.date_id:04d}.csv"
    services.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue().encode(), ContentType="text/csv")
    registered = inferences.register_inference(
        services.api,
        {
            "model_id": params.model_id,
            "date_id": params.date_id,
            "predictions_uri": _s3_uri(bucket, key),
            "n_rows": len(out),
            "mae": mae,
            "zero_mae": zero_mae,
            "n_targets": n_targets,
            "centered": params.center,
            "job_id": job_id,
        },
    )
    return {
        "model_inference_id": registered["id"],
        "model_id": params.model_id,
        "date_id": params.date_id,
        "predictions_uri": registered["predictions_uri"],
        "n_rows": len(out),
        "n_targets": n_targets,
        "mae": mae,
        "zero_mae": zero_mae,
        "centered": params.center,
        "rows_from": origin,
        "timings": {"read": round(read_s, 3), "predict": round(predict_s, 3)},
    }


RUNNERS: dict[str, Callable[[Services, str, Any], dict[str, Any]]] = {
    "train": run_train,
    "inference": run_inference,
    "store_day": run_store_day,
}
