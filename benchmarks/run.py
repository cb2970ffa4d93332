"""`make bench`: runs every benchmarks/bench_*.py (each has `run() -> dict`) and writes benchmarks/results.json.

`python -m benchmarks.run NAME ...` runs only those (e.g. `local_cloud`); results of the others already in the
file are kept, so one benchmark can be re-measured without the rest.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.setdefault("benchmarks", {})
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            outcome = module.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            outcome = {"error": traceback.format_exc(limit=3)}
        outcome["wall_seconds"] = round(time.perf_counter() - started, 2)
        outcome["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        results["benchmarks"][name] = outcome
        print(json.dumps(outcome, indent=2), flush=True)
    results["machine"] = machine()
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
