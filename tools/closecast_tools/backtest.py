"""`closecast backtest`: the walk-forward comparison of the daily update with frozen, refit and seed models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    backtest = subparsers.add_parser(
        "backtest",
        help="walk-forward backtest: daily update vs frozen, refit, seed, zero and oracle",
        description="Train on the first K days of a generated market directory or Kaggle files (train.csv, or "
        "test.csv + revealed_targets.csv), then for each next day predict it, score it and update on it. "
        "Compares `daily` (the guarded daily update), `frozen`, `refit` (from scratch every N days), `seed` "
        "(the seed's configuration and loop), `zero` and `oracle` (generated data only).",
    )
    backtest.add_argument(
        "--data", type=Path, nargs="+", required=True, help="a generated directory or Kaggle CSVs"
    )
    backtest.add_argument("--train-days", type=int, required=True, help="days to train the first model on")
    backtest.add_argument("--json", type=Path, help="write the figures here (JSON)")
    backtest.add_argument("--png", type=Path, help="write the per-day MAE chart here (PNG)")
    backtest.add_argument("--refit-every", type=int, default=10, help="days between refits of `refit` (10)")
    backtest.add_argument("--walk-days", type=int, help="walk only this many days (default: all the rest)")
    backtest.add_argument("--models", default="daily,frozen,refit,seed", help="comma-separated subset")
    backtest.add_argument("--no-progress", action="store_true")
    backtest.set_defaults(func=run_backtest_command)


def run_backtest_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from closecast_ml.backtest import format_table, run_backtest, write_png
    from closecast_ml.dataset import DatasetError
    from closecast_ml.kaggle import KaggleFormatError

    bar: list[Any] = []

    def start(total: int) -> None:
        bar.append(
            tqdm(total=total, unit="day", desc="walk-forward", disable=args.no_progress, file=sys.stderr)
        )

    data = args.data[0] if len(args.data) == 1 else args.data
    try:
        result = run_backtest(
            data,
            train_days=args.train_days,
            refit_every=args.refit_every,
            models=[m.strip() for m in args.models.split(",") if m.strip()],
            walk_days=args.walk_days,
            on_start=start,
            progress=lambda n: bar[0].update(n) if bar else None,
        )
    except (DatasetError, KaggleFormatError, ValueError, FileNotFoundError) as error:
        print(f"closecast backtest: {error}", file=sys.stderr)
        return 2
    finally:
        if bar:
            bar[0].close()
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png:
        print(f"wrote {write_png(result, args.png)}")
    return 0
