"""`closecast openapi`: print or write docs/openapi.json (generated from the code; a test keeps them equal)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from closecast.api.openapi import document


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("openapi", help="print the HTTP API's OpenAPI document (or --write it)")
    parser.add_argument(
        "--write", type=Path, default=None, help="write it to this file (e.g. docs/openapi.json)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = document()
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
