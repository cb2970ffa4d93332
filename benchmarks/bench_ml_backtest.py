"""The walk-forward backtest on seed 7, 120 days, train 80, with its goals (see bench_ml.py)."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_ml import run_backtest


def run() -> dict[str, Any]:
    return run_backtest()
