"""The exact status each sample HTTP event in events/ answers with: the fast handler tests (stubbed Data API)
and the local-cloud test (real PostgreSQL) both hold the handlers to it."""

from __future__ import annotations

EXPECTED_STATUS: dict[str, int] = {
    "date_mappings/get-by-date.json": 200,
    "date_mappings/get-date-as-seconds.json": 422,
    "date_mappings/get-list.json": 200,
    "date_mappings/post-mappings.json": 201,
    "date_mappings/post-original-names.json": 201,
    "healthcheck/get.json": 200,
    "jobs/get-list.json": 200,
    "jobs/get-one-missing.json": 404,
    "jobs/post-inference-model-original.json": 202,
    "jobs/post-inference.json": 202,
    "jobs/post-train-model-original.json": 202,
    "jobs/post-train.json": 202,
    "model_inferences/get-list.json": 200,
    "model_inferences/post-bad-model.json": 400,
    "model_inferences/post-original.json": 201,
    "models/get-champions.json": 200,
    "models/get-list.json": 200,
    "models/get-original-filters.json": 200,
    "models/get-promotions.json": 200,
    "models/post-coerced-version.json": 422,
    "models/post-model.json": 201,
    "models/post-original.json": 201,
    "models/put-champion-missing.json": 404,
    "predictions/get-bad-second.json": 422,
    "predictions/get-list.json": 200,
    "stock_data/get-bad-parameter.json": 422,
    "stock_data/get-list.json": 200,
    "stock_data/get-original-range.json": 200,
    "stock_data/get-train-type.json": 200,
    "stock_data/post-commit-false.json": 200,
    "stock_data/post-deeply-nested.json": 400,
    "stock_data/post-duplicate-rows.json": 400,
    "stock_data/post-keys-only.json": 422,
    "stock_data/post-multipart-no-boundary.json": 415,
    "stock_data/post-original-envelope.json": 201,
    "stock_data/post-rows.json": 201,
    "web/get-config.json": 200,
    "web/get-index.json": 200,
}

# POSTs that queue a job: the stubbed handler tests have no queue, so only the local cloud runs them.
NEEDS_QUEUE: frozenset[str] = frozenset(name for name in EXPECTED_STATUS if name.startswith("jobs/post-"))
# The dashboard's static files: not JSON, covered by the dashboard function's own tests and the local cloud.
STATIC_PAGE: frozenset[str] = frozenset(name for name in EXPECTED_STATUS if name.startswith("web/"))
