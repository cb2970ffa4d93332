"""`closecast up` and `closecast demo` as processes, the way a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from closecast_tools.local.cloud import client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def start_up(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "closecast_tools.cli", "up", "--state-dir", str(state_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    for line in process.stdout:
        if line.startswith("ready"):
            return process, line
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError("closecast up never printed its ready line")


def stop(process: subprocess.Popen[str], sig: int) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post(url: str, body: Any) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_up_serves_stops_cleanly_on_signals_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    """Given `closecast up`, when it prints `ready`, then local.json names its endpoints; data posted survives a
    SIGTERM stop and a restart on the same state directory, and SIGINT stops it cleanly too."""
    state_dir = tmp_path / "state"
    process, ready = start_up(state_dir)
    try:
        state = json.loads((state_dir / "local.json").read_text())
        assert state["api_url"] in ready
        assert (
            post(
                state["api_url"] + "/date_mappings/", {"data": [{"date_id": 1, "trading_date": "2023-01-03"}]}
            )
            == 201
        )
    finally:
        code = stop(process, signal.SIGTERM)
    assert code == 0
    assert not (state_dir / "local.json").exists()

    process, _ = start_up(state_dir)
    try:
        state = json.loads((state_dir / "local.json").read_text())
        body = get(state["api_url"] + "/date_mappings/?date_id=1")
        assert body["data"] == [{"date_id": 1, "trading_date": "2023-01-03"}]
    finally:
        code = stop(process, signal.SIGINT)
    assert code == 0


def test_demo_backfills_streams_trains_and_infers_through_jobs(tmp_path: Path) -> None:
    """Given a fresh state directory, when `closecast demo --exit` runs (a small market: 12 days x 20 stocks),
    then the streamed days come back through the HTTP API, the bad records are quarantined, a model is trained
    and each streamed day is predicted through jobs, the backtest table is printed, and it says `demo ok`."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "closecast_tools.cli",
            "demo",
            "--exit",
            "--days",
            "12",
            "--stocks",
            "20",
            "--state-dir",
            str(tmp_path / "demo"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rows back through GET /stock_data/: {10: " in done.stdout
    assert "quarantined bad records: 2" in done.stdout
    assert "model 1 (demo v1): 10 days" in done.stdout
    assert "predictions: s3://closecast-databucket/predictions/demo/1/0010.csv" in done.stdout
    assert "oracle" in done.stdout and "captured" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("demo ok")


def test_invoke_without_a_running_cloud_brings_one_up_for_the_call(tmp_path: Path) -> None:
    """Given no local cloud running, when `closecast invoke stock_data -e events/stock_data/get-list.json`
    runs, then it starts one for the call, prints the handler's answer and leaves nothing running."""
    state_dir = tmp_path / "state"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "closecast_tools.cli",
            "invoke",
            "stock_data",
            "-e",
            str(REPO / "events" / "stock_data" / "get-list.json"),
            "--state-dir",
            str(state_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["page_size"] == 50
    assert not (state_dir / "local.json").exists()


def test_invoke_of_an_unknown_function_names_the_known_ones(tmp_path: Path) -> None:
    """Given a function name that is not in the template, when invoked, then it fails listing the real ones."""
    done = subprocess.run(
        [sys.executable, "-m", "closecast_tools.cli", "invoke", "nope", "--state-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "IngestFunction" in done.stderr


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (moto's log, PostgreSQL's data dir, ...)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(proc.name))
    return found


def alive(pids: list[int]) -> list[int]:
    living = []
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.append(pid)
    return living


@pytest.mark.parametrize("moment", ["while-starting", "while-serving"])
def test_sigterm_leaves_no_process_behind(tmp_path: Path, moment: str) -> None:
    """Given `closecast up`, when SIGTERM arrives while it starts or once it serves, then it exits and no
    PostgreSQL, moto or function process of its state directory is left running."""
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "closecast_tools.cli", "up", "--state-dir", str(state_dir)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # while starting: as soon as moto is spawned (the database and functions are not up yet)
    marker = state_dir / ("logs/moto.log" if moment == "while-starting" else "local.json")
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists()
    children = children_of(process.pid)
    assert stop(process, signal.SIGTERM) in (0, 130)
    deadline = time.monotonic() + 15
    while (processes_using(state_dir) or alive(children)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_using(state_dir) == []
    assert alive(children) == []


def test_ctrl_c_at_the_terminal_stops_everything_in_order(tmp_path: Path) -> None:
    """Given `closecast up` serving, with an object in its bucket, when Ctrl-C reaches its whole process group
    (as from a terminal), then it exits 0, saves the bucket first (moto is not killed by the same Ctrl-C),
    leaves no process behind, and the next start has the object again."""
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "closecast_tools.cli", "up", "--state-dir", str(state_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("ready"):
            break
    state = json.loads((state_dir / "local.json").read_text())
    s3 = client("s3", state["aws_endpoint_url"])
    s3.put_object(Bucket=state["bucket"], Key="models/kept.txt", Body=b"kept")
    children = children_of(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert (state_dir / "s3" / state["bucket"] / "models" / "kept.txt").read_bytes() == b"kept"
    deadline = time.monotonic() + 15
    while (processes_using(state_dir) or alive(children)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_using(state_dir) == [] and alive(children) == []

    # and the next start puts the object back in the bucket
    process, _ = start_up(state_dir)
    try:
        state = json.loads((state_dir / "local.json").read_text())
        s3 = client("s3", state["aws_endpoint_url"])
        assert s3.get_object(Bucket=state["bucket"], Key="models/kept.txt")["Body"].read() == b"kept"
    finally:
        assert stop(process, signal.SIGTERM) == 0
