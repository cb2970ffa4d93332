"""`closecast generate` and `closecast replay`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

LOCAL_CONFIG = Path(".closecast") / "local.json"
MAX_DATE = 32_767


def register(subparsers: Any) -> None:
    generate = subparsers.add_parser(
        "generate",
        help="write a synthetic market (Kaggle schema + the oracle) to a directory",
        description="Write a synthetic closing-auction market in the Kaggle schema, with the oracle of each "
        "target. Parquet: DIR/train.parquet, DIR/oracle.parquet, DIR/manifest.json; "
        "csv: DIR/train.csv (Kaggle column order), DIR/oracle.csv (row_id,oracle), DIR/manifest.json.",
    )
    generate.add_argument("--days", type=int, required=True, help="number of dates (date_id 0..N-1)")
    generate.add_argument("--seed", type=int, required=True)
    generate.add_argument("--out", type=Path, required=True, help="output directory")
    generate.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    generate.add_argument("--stocks", type=int, default=200, help="number of stocks, 1..200 (default 200)")
    generate.set_defaults(func=run_generate)

    replay = subparsers.add_parser(
        "replay",
        help="put a dataset on a Kinesis stream in time order, snapshot by snapshot",
        description="Replay a generated market directory, or Kaggle CSV files (train.csv, or test.csv "
        "[+ revealed_targets.csv]), onto a Kinesis stream: the local cloud by default "
        f"({LOCAL_CONFIG}), or a real stream with --aws --stream NAME.",
    )
    replay.add_argument("source", nargs="+", type=Path, help="a generated directory, or Kaggle CSV files")
    replay.add_argument("--stream", help="stream name (default: the local cloud's)")
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--local", dest="aws", action="store_false", help="the local cloud (default)")
    target.add_argument("--aws", dest="aws", action="store_true", help="AWS, with the usual credentials")
    replay.add_argument("--from-date", type=int, default=0, help="first date_id (inclusive)")
    replay.add_argument("--to-date", type=int, default=MAX_DATE, help="last date_id (inclusive)")
    replay.add_argument("--speed", default="max", help="realtime, xN (N times real time) or max (default)")
    replay.add_argument("--shape", choices=("row", "envelope"), default="row")
    replay.add_argument(
        "--reveal-targets", action="store_true", help="send targets after each day, not in rows"
    )
    replay.add_argument("--endpoint-url", help="Kinesis endpoint (overrides the local config)")
    replay.add_argument("--region", help="AWS region (overrides the local config)")
    replay.add_argument(
        "--config", type=Path, default=LOCAL_CONFIG, help=f"local cloud config ({LOCAL_CONFIG})"
    )
    replay.add_argument("--max-attempts", type=int, default=8, help="PutRecords attempts per record")
    replay.add_argument("--no-progress", action="store_true")
    replay.set_defaults(func=run_replay, aws=False)


def run_generate(args: argparse.Namespace) -> int:
    from closecast_tools.market.generate import write_dataset

    if args.out.exists() and not args.out.is_dir():
        print(f"closecast generate: --out {args.out} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        summary = write_dataset(
            args.out, days=args.days, seed=args.seed, n_stocks=args.stocks, fmt=args.format
        )
    except (ValueError, OSError) as error:
        print(f"closecast generate: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary.rows} rows ({summary.days} days x {summary.stocks} stocks, seed {summary.seed}, "
        f"{summary.format}) to {summary.out} in {summary.seconds:.1f} s"
    )
    return 0


def parse_speed(text: str) -> float | None:
    """'max' -> None, 'realtime' -> 1.0, 'x10' or '10' -> 10.0."""
    value = text.strip().lower()
    if value == "max":
        return None
    if value in ("realtime", "real-time", "x1"):
        return 1.0
    try:
        speed = float(value.removeprefix("x"))
    except ValueError:
        raise ValueError(f"--speed {text!r}: expected realtime, xN or max") from None
    if not speed > 0:
        raise ValueError(f"--speed {text!r}: must be > 0")
    return speed


def kinesis_target(args: argparse.Namespace) -> tuple[Any, str]:
    """(boto3 Kinesis client, stream name) for the local cloud or AWS."""
    import boto3

    if args.aws:
        if not args.stream:
            raise ValueError("--aws needs --stream NAME")
        client = boto3.client("kinesis", region_name=args.region, endpoint_url=args.endpoint_url)
        return client, args.stream
    config: dict[str, Any] = {}
    if args.config.is_file():
        config = json.loads(args.config.read_text())
    elif not (args.endpoint_url and args.stream):
        raise ValueError(
            f"no local cloud config at {args.config}: start it (closecast up) or give --endpoint-url"
        )
    endpoint = args.endpoint_url or config.get("aws_endpoint_url")
    stream = args.stream or config.get("stream_name")
    if not endpoint or not stream:
        raise ValueError(f"{args.config}: needs aws_endpoint_url and stream_name")
    client = boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=args.region or config.get("region") or "us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - the local cloud's fixed dummy credentials
    )
    return client, stream


def run_replay(args: argparse.Namespace) -> int:
    from closecast_ml.dataset import DatasetError, date_span
    from closecast_ml.kaggle import KaggleFormatError
    from closecast_tools.market.replay import ReplayError, ReplayOptions, open_source, replay

    if args.from_date > args.to_date:
        print(
            f"closecast replay: --from-date {args.from_date} is after --to-date {args.to_date}",
            file=sys.stderr,
        )
        return 2
    try:
        speed = parse_speed(args.speed)
        frames, total = open_source(args.source, (args.from_date, args.to_date))
        if total == 0:
            span = date_span(args.source)
            has = "no row at all" if span is None else f"date_id {span[0]}..{span[1]}"
            print(
                f"closecast replay: no rows in date_id {args.from_date}..{args.to_date} to replay"
                f" (the dataset has {has})",
                file=sys.stderr,
            )
            return 2
        client, stream = kinesis_target(args)
    except (ValueError, DatasetError, KaggleFormatError, OSError) as error:
        print(f"closecast replay: {error}", file=sys.stderr)
        return 2
    options = ReplayOptions(
        shape=args.shape,
        speed=speed,
        reveal_targets=args.reveal_targets,
        max_attempts=args.max_attempts,
        progress=not args.no_progress,
        total_rows=total,
    )
    # SIGTERM stops a replay the way Ctrl-C does: it says what was sent and what was not
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        summary = replay(frames, client, stream, options)
    except ReplayError as error:
        print(error.summary.text(), file=sys.stderr)
        print(f"closecast replay: {error}", file=sys.stderr)
        return 1
    print(summary.text())
    return 0
