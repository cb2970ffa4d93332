"""`closecast backfill FILE_OR_DIR`: a history (Kaggle train.csv, or a directory from `closecast generate`) straight
into the database and the day store, so that 481 days can be trained on without streaming 5 M rows.

The bulk path: each day's rows go to `stock_data` as one JSON array per Data API statement (a day is about
3 MB; requests stay under the 4 MiB limit), then the day is written to the day store from the same frame and
recorded with the database's signature of it (so it is not found stale afterwards). Re-running it changes
nothing (rows are upserted on their natural key; a day store object with the same content keeps its version).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from closecast import day_store as book
from closecast.config import CalendarConfig
from closecast.db.data_api import DataApi
from closecast.market.schema import KAGGLE_COLUMNS
from closecast.resources.stock_data import sql as stock_data

LOCAL_CONFIG = Path(".closecast") / "local.json"
MAX_STATEMENT_BYTES = 3_500_000  # JSON of one statement's rows, under the Data API's 4 MiB request limit


@dataclass
class Target:
    api: DataApi
    s3: Any
    bucket: str
    where: str
    first_trading_date: str = "2023-01-03"  # the stack's FirstTradingDate: date mappings of new date_ids


@dataclass
class BackfillReport:
    days: int = 0
    rows: int = 0
    statements: int = 0
    stored: list[int] = field(default_factory=list)
    incomplete: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def text(self) -> str:
        return (
            f"backfilled {self.rows} rows of {self.days} days in {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s, {self.statements} statements); day store: {len(self.stored)} "
            f"days written" + (f", {len(self.incomplete)} without every target" if self.incomplete else "")
        )


def local_target(config_path: Path) -> Target:
    import boto3

    from closecast_tools.local.cloud import CREDENTIALS, REGION

    if not config_path.is_file():
        raise ValueError(f"no local cloud config at {config_path}: start it first (closecast up)")
    config = json.loads(config_path.read_text())
    region = config.get("region") or REGION
    rds = boto3.client(
        "rds-data", endpoint_url=config["data_api_endpoint_url"], region_name=region, **CREDENTIALS
    )
    s3 = boto3.client("s3", endpoint_url=config["aws_endpoint_url"], region_name=region, **CREDENTIALS)
    secret = config.get("db_writer_secret_arn") or config["db_secret_arn"]  # the writer role, as the stream
    api = DataApi(rds, config["db_cluster_arn"], secret, config["database"])
    first = (config.get("parameter_overrides") or {}).get("FirstTradingDate", "2023-01-03")
    return Target(api, s3, config["bucket"], f"the local cloud ({config_path})", first)


def stack_target(stack: str, database: str, region: str | None) -> Target:
    import boto3

    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)[
            "Stacks"
        ][0]["Outputs"]
    }
    api = DataApi(
        boto3.client("rds-data", region_name=region),
        outputs["DbClusterArn"],
        outputs["DbSecretArn"],
        database,
    )
    return Target(api, boto3.client("s3", region_name=region), outputs["BucketName"], f"stack {stack}")


def _statements(day: pd.DataFrame) -> list[str]:
    """The day's rows as JSON arrays, each under MAX_STATEMENT_BYTES. Floats travel at full precision (the
    shortest text that reads back as the same double), so the database holds exactly the source's values and a
    model predicts the same numbers from either."""
    from closecast_tools.market.replay import rows_as_dicts

    rows = rows_as_dicts(day)
    text = json.dumps(rows, separators=(",", ":"), allow_nan=False)
    if len(text) <= MAX_STATEMENT_BYTES:
        return [text]
    parts = len(text) // MAX_STATEMENT_BYTES + 1
    size = -(-len(rows) // parts)
    return [
        json.dumps(rows[i : i + size], separators=(",", ":"), allow_nan=False)
        for i in range(0, len(rows), size)
    ]


def backfill(
    source: Path,
    target: Target,
    *,
    date_range: tuple[int, int] | None = None,
    store: bool = True,
    progress: bool = True,
) -> BackfillReport:
    from tqdm import tqdm

    from closecast_ml.dataset import date_span, is_generated, iter_days
    from closecast_ml.daystore import DayStore, frame_of_records

    day_store = DayStore(target.api, target.s3, target.bucket)
    calendar = CalendarConfig.model_validate({"FIRST_TRADING_DATE": target.first_trading_date})
    report = BackfillReport()
    span = date_span([source]) if is_generated(source) else None  # (a CSV would be read twice)
    total_days = None
    if span is not None:
        first, last = (
            span if date_range is None else (max(span[0], date_range[0]), min(span[1], date_range[1]))
        )
        total_days = max(0, last - first + 1)
    started = time.perf_counter()
    with tqdm(total=total_days, unit="day", disable=not progress, file=sys.stderr) as bar:
        for day in iter_days(source, date_range=date_range):
            rows = day[list(KAGGLE_COLUMNS)]
            date_id = int(rows["date_id"].iloc[0])
            as_sent: list[dict[str, Any]] = []
            for statement in _statements(rows):
                stock_data.bulk_upsert_json(
                    target.api, statement, date_ids=[date_id], date_of=calendar.date_of
                )
                report.statements += 1
                if store:  # the values exactly as the database parsed them
                    as_sent.extend(json.loads(statement))
            if store:
                source_of_day = book.day_sources(target.api, date_id, date_id)[date_id]
                if source_of_day.complete:
                    day_store.put_day(frame_of_records(as_sent), source_of_day)
                    report.stored.append(date_id)
                else:
                    report.incomplete.append(date_id)
            report.days += 1
            report.rows += len(rows)
            bar.update(1)
            bar.set_postfix(rows=report.rows, refresh=False)
    report.seconds = time.perf_counter() - started
    return report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="load a history (Kaggle train.csv or a generated directory) into the database and the day store",
        description="Load a Kaggle train.csv (or a directory from `closecast generate`) straight into "
        "stock_data and the day store by the bulk path, with a progress bar: the local cloud by default "
        f"({LOCAL_CONFIG}), or a deployed stack with --aws --stack NAME.",
    )
    parser.add_argument(
        "source", type=Path, help="train.csv, a directory of Kaggle CSVs, or a generated directory"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local", dest="aws", action="store_false", help="the local cloud (default)")
    where.add_argument(
        "--aws", dest="aws", action="store_true", help="a deployed stack, with the usual credentials"
    )
    parser.add_argument(
        "--stack", default="closecast", help="the stack's name with --aws (default closecast)"
    )
    parser.add_argument(
        "--database", default="closecast", help="the database name with --aws (default closecast)"
    )
    parser.add_argument("--region", default=None)
    parser.add_argument(
        "--config", type=Path, default=LOCAL_CONFIG, help=f"local cloud config ({LOCAL_CONFIG})"
    )
    parser.add_argument("--from-date", type=int, default=None, help="first date_id (inclusive)")
    parser.add_argument("--to-date", type=int, default=None, help="last date_id (inclusive)")
    parser.add_argument("--no-store", action="store_true", help="the database only, not the day store")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run_backfill, aws=False)


def run_backfill(args: argparse.Namespace) -> int:
    from closecast_ml.dataset import DatasetError
    from closecast_ml.kaggle import KaggleFormatError

    if not args.source.exists():
        print(f"closecast backfill: {args.source} does not exist", file=sys.stderr)
        return 2
    date_range = None
    if args.from_date is not None or args.to_date is not None:
        date_range = (args.from_date or 0, args.to_date if args.to_date is not None else 2**31 - 1)
        if date_range[0] > date_range[1]:
            print("closecast backfill: --from-date is after --to-date", file=sys.stderr)
            return 2
    try:
        target = (
            stack_target(args.stack, args.database, args.region) if args.aws else local_target(args.config)
        )
        report = backfill(
            args.source, target, date_range=date_range, store=not args.no_store, progress=not args.no_progress
        )
    except (ValueError, DatasetError, KaggleFormatError, OSError) as error:
        print(f"closecast backfill: {error}", file=sys.stderr)
        return 2
    print(f"{report.text()} into {target.where}")
    return 0
