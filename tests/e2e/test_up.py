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

from closecast_tools.local.cloud import auth_headers, client
from closecast_tools.local.moto_server import S3Disk

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


def get(state: dict[str, Any], url: str) -> Any:
    request = urllib.request.Request(url, headers=auth_headers(state))
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def post(state: dict[str, Any], url: str, body: Any) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **auth_headers(state)},
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
                state,
                state["api_url"] + "/date_mappings/",
                {"data": [{"date_id": 1, "trading_date": "2023-01-03"}]},
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
        body = get(state, state["api_url"] + "/date_mappings/?date_id=1")
        assert body["data"] == [{"date_id": 1, "trading_date": "2023-01-03", "date": "2023-01-03"}]
    finally:
        code = stop(process, signal.SIGINT)
    assert code == 0


def test_demo_backfills_streams_trains_and_runs_the_live_loop(tmp_path: Path) -> None:
    """Given a fresh state directory, when `closecast demo --exit` runs (a small market: 12 days x 20 stocks),
    then the streamed day comes back through the HTTP API, the bad records are quarantined, a model is trained
    and named champion, the 3 live days are predicted live and each starts its chain, the batch check and the
    backtest table are printed, and it says `demo ok`."""
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
    assert "rows back through GET /stock_data/: {8: " in done.stdout
    assert "quarantined bad records: 2" in done.stdout
    assert "model 1 (closecast v1): 8 days" in done.stdout
    assert "PUT /models/1/champion -> promotion" in done.stdout
    assert "batch check: the inference job of model" in done.stdout
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


def stored_objects(state_dir: Path, bucket: str) -> dict[str, bytes]:
    return {key: body for key, body, _ in S3Disk(state_dir / "s3").objects(bucket)}


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
    (as from a terminal), then it exits 0, leaves no process behind, and the next start has the object
    again."""
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
    assert stored_objects(state_dir, state["bucket"])["models/kept.txt"] == b"kept"
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


def test_bucket_objects_survive_kill_9_of_the_whole_cloud(tmp_path: Path) -> None:
    """Given `closecast up` with objects written to its bucket (one through the ingest quarantine, two put, one
    of them overwritten, and one put then deleted), when its whole process group is killed with SIGKILL (no
    chance to save anything), then the next start on the same state directory serves exactly the objects the
    bucket held, with their last contents and content type."""
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
    bucket = state["bucket"]
    s3 = client("s3", state["aws_endpoint_url"])
    s3.put_object(Bucket=bucket, Key="models/a.json", Body=b"first", ContentType="application/json")
    s3.put_object(Bucket=bucket, Key="models/a.json", Body=b"second", ContentType="application/json")
    s3.put_object(Bucket=bucket, Key="models/b.bin", Body=bytes(range(256)))
    s3.put_object(Bucket=bucket, Key="models/gone.txt", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="models/gone.txt")
    kinesis = client("kinesis", state["aws_endpoint_url"])
    kinesis.put_record(StreamName=state["stream_name"], Data=b"not json", PartitionKey="k")
    deadline = time.monotonic() + 120
    quarantined: list[str] = []
    while not quarantined and time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])
        quarantined = [o["Key"] for o in listed]
        time.sleep(0.2)
    assert len(quarantined) == 1
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}

    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 30  # moto follows its parent (SIGTERM from the kernel)
    while any("moto_server" in c for c in processes_using(state_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)

    process, _ = start_up(state_dir)
    try:
        state = json.loads((state_dir / "local.json").read_text())
        s3 = client("s3", state["aws_endpoint_url"])
        after = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert after == before == {"models/a.json", "models/b.bin", quarantined[0]}
        a = s3.get_object(Bucket=bucket, Key="models/a.json")
        assert (a["Body"].read(), a["ContentType"]) == (b"second", "application/json")
        assert s3.get_object(Bucket=bucket, Key="models/b.bin")["Body"].read() == bytes(range(256))
        document = json.loads(s3.get_object(Bucket=bucket, Key=quarantined[0])["Body"].read())
        assert document["record"]["data"] == "not json"
    finally:
        assert stop(process, signal.SIGTERM) == 0
