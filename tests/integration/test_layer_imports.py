"""The zip layer imports with only its own requirements: no numpy, pandas, pyarrow or xgboost in it."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "layers" / "closecast"

# what the AWS Lambda Python runtime itself provides beside a layer
LAMBDA_RUNTIME = ("boto3",)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_IMPORT_ALL = """
import importlib, pkgutil, sys
import closecast
names = ["closecast"] + [m.name for m in pkgutil.walk_packages(closecast.__path__, "closecast.")]
for name in names:
    importlib.import_module(name)
heavy = sorted({"numpy", "pandas", "pyarrow", "xgboost"} & set(sys.modules))
print(len(names), "modules;", "heavy:", ",".join(heavy) or "none")
"""


def test_every_layer_module_imports_with_only_the_layer_requirements(tmp_path: Path) -> None:
    """Given a clean virtualenv with only layers/closecast/requirements.txt installed (and boto3, which the
    Lambda runtime provides), when every module of the
    layer is imported (PYTHONPATH=layers/closecast), then all import and none pulls in numpy/pandas/pyarrow/
    xgboost."""
    env_dir = tmp_path / "layer-venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(LAYER / "requirements.txt"),
            *LAMBDA_RUNTIME,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    present = subprocess.run([str(python), "-c", "import numpy"], capture_output=True, text=True)
    assert present.returncode != 0, "numpy is in the layer's clean environment: the test would prove nothing"
    done = subprocess.run(
        [str(python), "-c", _IMPORT_ALL],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(LAYER), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("heavy: none"), done.stdout
