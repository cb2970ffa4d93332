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
    "model_inferences/get-list.json": 200,
    "model_inferences/post-bad-model.json": 400,
    "model_inferences/post-original.json": 201,
    "models/get-list.json": 200,
    "models/get-original-filters.json": 200,
    "models/post-coerced-version.json": 422,
    "models/post-model.json": 201,
    "models/post-original.json": 201,
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
}
