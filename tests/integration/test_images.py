"""The container images' content, proven without Docker: each image function's requirements.txt installed into a
clean virtualenv, the two packages (the layer `closecast`, the ML package `closecast_ml`) and app.py copied
into a task root as its Dockerfile does, and a job run through the handler against the local cloud."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIRST, DAYS = 2000, 6  # date_ids 2000..2005, apart from the other tests' days

RUN_HANDLER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import app

class Context:
    function_name = sys.argv[2]
    function_version = "$LATEST"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[2]
    aws_request_id = "image-test"

answer = app.handler(json.loads(sys.argv[3]), Context())
tools = sorted({n.split(".")[0] for n in sys.modules} & {"closecast_tools", "moto", "pgserver", "psycopg", "tqdm"})
print(json.dumps({"answer": answer, "tools": tools, "prefix": sys.prefix}, default=str))
"""


def _copy_task_root(function: str, root: Path) -> Path:
    """What the Dockerfile copies into LAMBDA_TASK_ROOT."""
    dockerfile = (REPO / "functions" / function / "Dockerfile").read_text()
    for source, target in (
        ("layers/closecast/closecast", "closecast"),
        ("ml/closecast_ml", "closecast_ml"),
        (f"functions/{function}/app.py", "app.py"),
    ):
        assert f"COPY {source} ${{LAMBDA_TASK_ROOT}}/{target}" in dockerfile, source
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, root / target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, root / target)
    assert "FROM public.ecr.aws/lambda/python:3.12" in dockerfile
    return root


@pytest.fixture(scope="module")
def virtualenvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One clean virtualenv per distinct requirements.txt of the image functions (pip may use its cache)."""
    made: dict[str, Path] = {}
    by_content: dict[str, Path] = {}
    for function in ("train", "inference"):
        requirements = (REPO / "functions" / function / "requirements.txt").read_text()
        if requirements not in by_content:
            venv = tmp_path_factory.mktemp(f"venv-{function}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
            done = subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "-r",
                    str(REPO / "functions" / function / "requirements.txt"),
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            by_content[requirements] = venv
        made[function] = by_content[requirements]
    return made


@pytest.fixture(scope="module")
def days(local_cloud: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    from closecast.market.schema import KAGGLE_COLUMNS
    from closecast_ml.dataset import read_dataset
    from closecast_tools.backfill import backfill, local_target
    from closecast_tools.market.generate import write_dataset

    directory = tmp_path_factory.mktemp("image-market")
    write_dataset(directory / "gen", days=DAYS, seed=5, n_stocks=10)
    frame = read_dataset(directory / "gen", with_oracle=False)
    frame["date_id"] = frame["date_id"].astype("int64") + FIRST
    frame["time_id"] = frame["date_id"] * 55 + frame["seconds_in_bucket"] // 10
    frame["row_id"] = (
        frame["date_id"].astype(str)
        + "_"
        + frame["seconds_in_bucket"].astype(str)
        + "_"
        + frame["stock_id"].astype(str)
    )
    frame[list(KAGGLE_COLUMNS)].to_csv(directory / "train.csv", index=False)
    backfill(
        directory / "train.csv", local_target(local_cloud.options.state_dir / "local.json"), progress=False
    )


def run_handler(
    local_cloud: Any, venv: Path, function: str, logical_id: str, event: dict[str, Any], tmp: Path
) -> dict[str, Any]:
    root = _copy_task_root(function, tmp / f"task-{function}")
    env = {
        **local_cloud.function_environment(logical_id),
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
    }
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", RUN_HANDLER, str(root), logical_id, json.dumps(event)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    output: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert output["prefix"] == str(venv)
    assert output["tools"] == [], output["tools"]
    return output["answer"]  # type: ignore[no-any-return]


def test_the_images_run_a_train_and_an_inference_job_with_only_their_requirements(
    local_cloud: Any, virtualenvs: dict[str, Path], days: None, tmp_path: Path
) -> None:
    """Given each image's requirements.txt in a clean virtualenv and the task root its Dockerfile makes, when
    the train handler gets a direct refit job and the inference handler a job for the next day, then both
    succeed, importing nothing of the tools (moto, pgserver, the local cloud)."""
    train = run_handler(
        local_cloud,
        virtualenvs["train"],
        "train",
        "TrainFunction",
        {
            "kind": "train",
            "model_name": "image-train",
            "start_date_id": FIRST,
            "end_date_id": FIRST + DAYS - 2,
        },
        tmp_path,
    )
    assert train["status"] == "succeeded", train["error"]
    inference = run_handler(
        local_cloud,
        virtualenvs["inference"],
        "inference",
        "InferenceFunction",
        {"kind": "inference", "model_id": train["result"]["model_id"], "date_id": FIRST + DAYS - 1},
        tmp_path,
    )
    assert inference["status"] == "succeeded", inference["error"]
    assert inference["result"]["n_rows"] > 0 and inference["result"]["mae"] is not None
