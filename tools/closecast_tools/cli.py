"""The `closecast` command. Each sub-command lives in its own module exposing `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

# module path for each sub-command group; each module has `register(subparsers) -> None`
COMMAND_MODULES: tuple[str, ...] = (
    "closecast_tools.local.commands",
    "closecast_tools.market.commands",
    "closecast_tools.backfill",
    "closecast_tools.backtest",
    "closecast_tools.openapi",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closecast", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # platformdirs (under pgserver) warns when XDG_RUNTIME_DIR is unset, which is normal on servers and CI
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
