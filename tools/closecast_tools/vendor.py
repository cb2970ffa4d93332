"""The dashboard's vendored JavaScript (web/vendor/): fetched with npm from the registry at the version pinned in
web/vendor/vendor.json, its tarball checked against the recorded integrity (sha512), and each file compared
with the committed copy (`--check`, what `make vendor-check` runs) or written (`--write`, to re-vendor after
changing the pin). Needs `npm` and the registry; the tests check the committed files offline."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "web" / "vendor"


def _pack(name: str, version: str, into: Path) -> Path:
    done = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(into)],
        capture_output=True,
        text=True,
        check=True,
    )
    return into / json.loads(done.stdout)[0]["filename"]


def check(write: bool = False) -> list[str]:
    """Problems found (empty when the vendored files are exactly the pinned packages' files)."""
    record = json.loads((VENDOR / "vendor.json").read_text())
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, entry in record.items():
            tarball = _pack(name, entry["version"], Path(tmp))
            digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
            if digest != entry["integrity"]:
                problems.append(
                    f"{name}@{entry['version']}: the registry's tarball is {digest}, not the pinned one"
                )
                continue
            with tarfile.open(tarball) as archive:
                for source, target in entry["files"].items():
                    member = archive.extractfile(source)
                    if member is None:
                        problems.append(f"{name}: {source} is not in the package")
                        continue
                    data = member.read()
                    if hashlib.sha256(data).hexdigest() != target["sha256"]:
                        problems.append(f"{name}: {source} differs from the recorded sha256")
                    path = VENDOR / target["to"]
                    if write:
                        path.write_bytes(data)
                    elif not path.is_file() or path.read_bytes() != data:
                        problems.append(
                            f"{name}: web/vendor/{target['to']} differs from {source} of the package"
                        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closecast_tools.vendor", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the package's files into web/vendor/")
    args = parser.parse_args(argv)
    problems = check(write=args.write)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("web/vendor matches the pinned packages" + (" (written)" if args.write else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
