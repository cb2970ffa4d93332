"""The template through the AWS SAM CLI itself: lint, and a build of the zip functions and the layer whose
artifacts import on a Python that has only what Lambda's runtime has (boto3) plus the layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def sam(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "sam"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_sam_validate_lint_passes() -> None:
    """Given template.yaml, when `sam validate --lint` runs, then it reports a valid template."""
    done = sam("validate", "--lint", "--template", "template.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


def _without_resources(text: str, logical_ids: list[str]) -> str:
    """template.yaml's text without the named top-level resources (and without outputs that name them)."""
    lines, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("  ") and not line.startswith("   ") and line.strip().endswith(":"):
            skipping = line.strip()[:-1] in logical_ids
        elif not line.startswith(" ") and line.strip():
            skipping = False
        if not skipping:
            lines.append(line)
    return "".join(lines)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    search = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which("python3.12", path=search) is None:
        pytest.skip(
            "sam build of a python3.12 function needs Python 3.12 on PATH (make install uses it when present)"
        )
    out = tmp_path_factory.mktemp("sam-build")
    # Image functions need a Docker engine to build (their content is proven by tests/integration/test_images.py);
    # the zip functions and the layer are built from a copy of the template without them.
    from closecast_tools.local.template import Template

    template = Template(REPO / "template.yaml")
    text = (REPO / "template.yaml").read_text()
    zip_only = out.parent / f"{out.name}-template.yaml"
    kept = _without_resources(text, [k for k, s in template.functions.items() if s.package_type == "Image"])
    zip_only.write_text(kept)
    done = sam("build", "--template", str(zip_only), "--base-dir", str(REPO), "--build-dir", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_sam_build_builds_every_zip_function_and_the_layer(build_dir: Path) -> None:
    """Given the template, when `sam build` runs, then each zip function and the layer (with the closecast
    library and its requirements) are in the build directory."""
    from closecast_tools.local.template import Template

    template = Template(REPO / "template.yaml")
    for logical_id, spec in template.functions.items():
        if spec.package_type == "Zip":
            assert (build_dir / logical_id / "app.py").is_file(), logical_id
    layer = build_dir / "CloseCastLayer" / "python"
    assert (layer / "closecast" / "db" / "migrations" / "0001_initial.sql").is_file()
    assert (layer / "aws_lambda_powertools").is_dir() and (layer / "pydantic").is_dir()


def test_built_handlers_import_with_only_the_lambda_runtime_and_the_layer(
    build_dir: Path, tmp_path: Path
) -> None:
    """Given the built artifacts, when each handler is imported by a Python that sees only boto3 (what the
    Lambda runtime provides), the layer and the function's own folder, then every import succeeds: no zip
    function depends on a package the layer does not carry (pandas, xgboost, the tools)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    import boto3

    site = Path(boto3.__file__).parents[1]
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
        (runtime / name).symlink_to(site / name)
    from closecast_tools.local.template import Template

    template = Template(REPO / "template.yaml")
    for logical_id, spec in template.functions.items():
        if spec.package_type != "Zip":
            continue
        paths = [str(build_dir / logical_id), str(build_dir / "CloseCastLayer" / "python"), str(runtime)]
        code = (
            "import sys; sys.path[:0] = " + repr(paths) + "\n"
            "import importlib; m = importlib.import_module('app'); assert callable(m.handler)\n"
            "bad = [n for n in sys.modules if n.split('.')[0] in ('pandas', 'numpy', 'xgboost', 'closecast_tools', "
            "'moto', 'psycopg', 'pgserver')]\n"
            "assert not bad, bad\n"
        )
        done = subprocess.run(
            [sys.executable, "-S", "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 0, f"{logical_id}: {done.stderr}"


def test_every_function_folder_is_in_the_template() -> None:
    """Given functions/, then every folder there is a function of the template (nothing orphaned)."""
    from closecast_tools.local.template import Template

    code_dirs = [Path(spec.code_dir) for spec in Template(REPO / "template.yaml").functions.values()]
    used = {d.name for d in code_dirs if d.parent.name == "functions"}  # the dashboard's code is web/
    folders = {p.name for p in (REPO / "functions").iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert folders == used
    assert shutil.which("sam", path=str(BIN))
