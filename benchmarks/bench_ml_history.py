"""Full-history training on 481 synthetic days: `full` vs the seed's configuration (see bench_ml.py).
Skipped with CLOSECAST_BENCH_QUICK=1 (several minutes on 2 cores)."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_ml import run_history


def run() -> dict[str, Any]:
    return run_history()
