"""The local cloud as a user meets it: the template's routes over real HTTP, the stream into PostgreSQL
through the ingest function and the Data API, the quarantine in S3."""

from __future__ import annotations

import csv
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from closecast.market.schema import KAGGLE_COLUMNS, PRICE_COLUMNS, SIZE_COLUMNS
from closecast_tools.local.cloud import client
from closecast_tools.local.template import Template

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEADERS: dict[str, str] = {}  # the demo user's Authorization header (sign-in is not the point here)


@pytest.fixture(autouse=True)
def _signed_in(api_headers: dict[str, str]) -> None:
    HEADERS.clear()
    HEADERS.update(api_headers)


# the nullable feature columns, in the Kaggle order
FEATURES = tuple(c for c in KAGGLE_COLUMNS if c in (*SIZE_COLUMNS, *PRICE_COLUMNS))


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **HEADERS}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def kaggle_rows(shared_data: Path, date_id: int, seconds: set[int]) -> list[dict[str, Any]]:
    ints = {"stock_id", "date_id", "seconds_in_bucket", "imbalance_buy_sell_flag", "time_id"}
    rows = []
    with open(shared_data / "kaggle-example" / "test.csv") as handle:
        for raw in csv.DictReader(handle):
            if int(raw["date_id"]) != date_id or int(raw["seconds_in_bucket"]) not in seconds:
                continue
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if key == "row_id":
                    row[key] = value
                elif key in ints:
                    row[key] = int(value)
                else:
                    row[key] = float(value) if value else None
            rows.append(row)
    return rows


def put_envelopes(cloud: Any, rows: list[dict[str, Any]], extra: list[bytes] = ()) -> None:  # type: ignore[assignment]
    kinesis = client("kinesis", cloud.state["aws_endpoint_url"])
    by_snapshot: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        by_snapshot.setdefault((row["date_id"], row["seconds_in_bucket"]), []).append(row)
    records = [
        {"Data": json.dumps({"data": chunk, "commit": True}).encode(), "PartitionKey": f"{d}_{s}"}
        for (d, s), chunk in sorted(by_snapshot.items())
    ]
    records += [{"Data": data, "PartitionKey": "extra"} for data in extra]
    response = kinesis.put_records(StreamName=cloud.state["stream_name"], Records=records)
    assert response["FailedRecordCount"] == 0


def wait_for_total(url: str, expected: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = http("GET", url)
        assert status == 200, body
        if body["total_results"] >= expected or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.1)


def test_local_json_describes_the_running_cloud(local_cloud: Any) -> None:
    """Given the local cloud is up, then local.json names every endpoint and resource a client needs."""
    state = json.loads((local_cloud.options.state_dir / "local.json").read_text())
    for key in (
        "api_url",
        "aws_endpoint_url",
        "data_api_endpoint_url",
        "region",
        "stream_name",
        "bucket",
        "train_jobs_queue_url",
        "inference_jobs_queue_url",
        "db_cluster_arn",
        "db_secret_arn",
        "database",
    ):
        assert state[key], key
    assert state["db_cluster_arn"].startswith("arn:aws:rds:")
    assert state["db_secret_arn"].startswith("arn:aws:secretsmanager:")


def test_every_template_route_is_served_and_every_served_route_is_in_the_template(local_cloud: Any) -> None:
    """Given the routes of template.yaml, when each is called on the gateway, then a function answers (not the
    gateway's 404); and the gateway serves exactly those routes."""
    template = Template(REPO / "template.yaml")
    assert {r.route_key for r in local_cloud.gateway.table.routes} == {r.route_key for r in template.routes()}
    unknown = {
        "model_id": "999999999",
        "inference_id": "999999999",
    }  # ids that exist nowhere, in each parameter's own format
    for route in template.routes():
        path = re.sub(
            r"\{([^}]+)\}",
            lambda m: unknown.get(m.group(1), "00000000-0000-4000-8000-000000000000"),
            route.path,
        )
        # the dashboard's routes answer its page (HTML); its JSON file stands for them here
        if route.function == "DashboardFunction":
            path = "/dashboard/config.json"
        status, body = http(
            route.method, local_cloud.state["api_url"] + path, {} if route.method == "POST" else None
        )
        assert body != {"message": "Not Found"}, route
        if route.function == "DashboardFunction":
            expected: tuple[int, ...] = (200,)
        else:
            expected = (404,) if path != route.path else (200, 201, 422)  # a path parameter: no such record
        assert status in expected, (route, status, body)
    status, body = http("GET", local_cloud.state["api_url"] + "/not-a-route")
    assert (status, body) == (404, {"message": "Not Found"})


@pytest.mark.parametrize("path", ["/stock_data/", "/date_mappings/", "/models/", "/model-inferences/"])
def test_each_resource_lists_with_the_page_envelope(local_cloud: Any, path: str) -> None:
    """Given a resource, when its list is asked for, then the answer is the page envelope."""
    status, body = http("GET", f"{local_cloud.state['api_url']}{path}?page=1&page_size=5")
    assert status == 200
    assert set(body) == {"total_results", "total_pages", "page", "page_size", "data"}
    assert body["page"] == 1 and body["page_size"] == 5


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("page=abc", 422, "page"),
        ("page_size=0", 422, "page_size"),
        ("page_size=100000", 422, "page_size"),
        ("seconds_in_bucket=15", 422, "seconds_in_bucket"),
        ("dateid=3", 400, "dateid"),
    ],
)
def test_bad_query_parameters_get_4xx_naming_the_field(
    local_cloud: Any, query: str, status: int, field: str
) -> None:
    """Given a bad or unknown query parameter, when the list is asked for, then 4xx with a JSON error naming it."""
    got, body = http("GET", f"{local_cloud.state['api_url']}/stock_data/?{query}")
    assert got == status
    assert [e["field"] for e in body["errors"]] == [field]


def test_snapshots_put_on_the_stream_come_back_through_the_api(local_cloud: Any, shared_data: Path) -> None:
    """Given 600 real Kaggle rows (three snapshots of date 478, moved to date 7478 that no other test uses)
    put on the stream as envelopes, when the API is asked for that date in pages of 250, then all 600 come
    back, paged, with their values intact."""
    rows = [
        dict(
            r,
            date_id=7478,
            time_id=7478 * 55 + r["seconds_in_bucket"] // 10,
            row_id=f"7478_{r['seconds_in_bucket']}_{r['stock_id']}",
        )
        for r in kaggle_rows(shared_data, 478, {30, 40, 50})
    ]
    put_envelopes(local_cloud, rows)
    api = local_cloud.state["api_url"]
    body = wait_for_total(f"{api}/stock_data/?date_id=7478&page_size=250", len(rows))
    assert (body["total_results"], body["total_pages"], len(body["data"])) == (600, 3, 250)
    _, last = http("GET", f"{api}/stock_data/?date_id=7478&page_size=250&page=3")
    assert len(last["data"]) == 100
    by_id = {r["row_id"]: r for r in rows}
    for got in body["data"]:
        sent = by_id[got["row_id"]]
        assert {k: got[k] for k in sent} == sent
        assert got["target"] is None


def test_bad_records_are_quarantined_and_do_not_stop_the_good_ones(
    local_cloud: Any, shared_data: Path
) -> None:
    """Given one good snapshot, a record that is not JSON and a row with an impossible flag in the same
    PutRecords call, when ingested, then the good rows land and both bad records are in the quarantine with
    their reason and raw data."""
    rows = kaggle_rows(shared_data, 479, {100})
    bad_row = dict(rows[0], imbalance_buy_sell_flag=7)
    put_envelopes(local_cloud, rows, extra=[b"\x00garbage", json.dumps(bad_row).encode()])
    body = wait_for_total(
        f"{local_cloud.state['api_url']}/stock_data/?date_id=479&seconds_in_bucket=100", 200
    )
    assert body["total_results"] == 200
    s3 = client("s3", local_cloud.state["aws_endpoint_url"])
    bucket = local_cloud.state["bucket"]
    deadline = time.monotonic() + 30
    documents: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])]
        documents = [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
        raw = [d["record"]["data"] for d in documents] + [d["record"]["data_base64"] for d in documents]
        if json.dumps(bad_row) in raw and any(d["reason"].startswith("not JSON") for d in documents):
            break
        time.sleep(0.2)
    flag = [d for d in documents if d["record"]["data"] == json.dumps(bad_row)]
    assert flag and flag[0]["rejections"][0]["errors"][0]["field"] == "imbalance_buy_sell_flag"
    assert any(d["reason"].startswith("not JSON") for d in documents)


def moved(rows: list[dict[str, Any]], date_id: int) -> list[dict[str, Any]]:
    """The same rows on another date_id (keys recomputed), so a test owns its rows."""
    return [
        dict(
            r,
            date_id=date_id,
            time_id=date_id * 55 + r["seconds_in_bucket"] // 10,
            row_id=f"{date_id}_{r['seconds_in_bucket']}_{r['stock_id']}",
        )
        for r in rows
    ]


def quarantined_documents(cloud: Any) -> list[dict[str, Any]]:
    s3 = client("s3", cloud.state["aws_endpoint_url"])
    bucket = cloud.state["bucket"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]


def test_delivering_the_same_records_twice_changes_nothing(local_cloud: Any, shared_data: Path) -> None:
    """Given a snapshot already ingested, when the same records are delivered again (then a marker record
    behind them on the same shard), then once the marker is visible the count and every value are unchanged
    and none of the duplicates was quarantined."""
    rows = moved(kaggle_rows(shared_data, 480, {200}), 7480)
    api = local_cloud.state["api_url"]
    url = f"{api}/stock_data/?date_id=7480&page_size=1000"
    put_envelopes(local_cloud, rows)
    first = wait_for_total(url, 200)
    put_envelopes(local_cloud, rows)
    put_envelopes(local_cloud, moved(rows[:1], 7481))  # the marker, after the duplicates
    assert wait_for_total(f"{api}/stock_data/?date_id=7481", 1)["total_results"] == 1
    second = wait_for_total(url, 200)
    assert second["total_results"] == first["total_results"] == 200
    assert second["data"] == first["data"]
    assert not [
        d for d in quarantined_documents(local_cloud) if '"date_id": 7480' in (d["record"]["data"] or "")
    ]


def test_post_then_get_on_each_resource(local_cloud: Any) -> None:
    """Given valid POST bodies, when posted, then 201 and the records are listed; a missing model is a 400
    naming model_id."""
    api = local_cloud.state["api_url"]
    status, _ = http(
        "POST", f"{api}/date_mappings/", {"data": [{"date_id": 900, "trading_date": "2024-01-02"}]}
    )
    assert status == 201
    _, listed = http("GET", f"{api}/date_mappings/?date_id=900")
    assert listed["data"] == [{"date_id": 900, "trading_date": "2024-01-02", "date": "2024-01-02"}]
    model = {
        "name": "xgb-test",
        "artifact_uri": "s3://closecast-databucket/models/m.ubj",
        "feature_set": "v1",
        "params": {"eta": 0.1},
    }
    status, created = http("POST", f"{api}/models/", model)
    assert status == 201 and created["version"] == 1 and created["params"] == {"eta": 0.1}
    inference = {
        "model_id": created["id"],
        "date_id": 900,
        "predictions_uri": "s3://closecast-databucket/predictions/p.parquet",
        "n_rows": 10,
    }
    status, _ = http("POST", f"{api}/model-inferences/", inference)
    assert status == 201
    status, body = http("POST", f"{api}/model-inferences/", {**inference, "model_id": 10**9})
    assert status == 400 and body["errors"][0]["field"] == "model_id"
    status, body = http("POST", f"{api}/models/", {**model, "artifact_uri": "not-s3"})
    assert status == 422 and body["errors"][0]["field"] == "artifact_uri"


def test_targets_revealed_before_their_rows_are_not_lost(local_cloud: Any, shared_data: Path) -> None:
    """Given a day's targets that arrive before the day's rows (possible across shards), when the rows arrive
    later, then every row carries its revealed target."""
    rows = [
        dict(
            r,
            date_id=7479,
            time_id=7479 * 55 + r["seconds_in_bucket"] // 10,
            row_id=f"7479_300_{r['stock_id']}",
        )
        for r in kaggle_rows(shared_data, 479, {300})
    ]
    targets = [
        {"date_id": 7479, "seconds_in_bucket": 300, "stock_id": r["stock_id"], "target": r["stock_id"] / 8}
        for r in rows
    ]
    kinesis = client("kinesis", local_cloud.state["aws_endpoint_url"])
    kinesis.put_record(
        StreamName=local_cloud.state["stream_name"],
        Data=json.dumps({"revealed_targets": targets}).encode(),
        PartitionKey="targets_7479",
    )
    time.sleep(1.5)  # let the targets be ingested first
    put_envelopes(local_cloud, rows)
    url = f"{local_cloud.state['api_url']}/stock_data/?date_id=7479&has_target=true&page_size=1000"
    body = wait_for_total(url, len(rows))
    assert body["total_results"] == 200
    assert sorted((r["stock_id"], r["target"]) for r in body["data"]) == [
        (t["stock_id"], t["target"]) for t in targets
    ]


def test_replaying_the_kaggle_example_files_lands_every_row_and_target(
    local_cloud: Any, shared_data: Path
) -> None:
    """Given Kaggle's example test.csv and revealed_targets.csv, when `closecast replay` puts them on the local
    stream (envelopes, targets revealed after each day), then all 33,000 rows land, and the 22,000 rows of
    dates 478 and 479 carry their real revealed targets."""
    import subprocess
    import sys

    example = shared_data / "kaggle-example"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "closecast_tools.cli",
            "replay",
            str(example / "test.csv"),
            str(example / "revealed_targets.csv"),
            "--shape",
            "envelope",
            "--reveal-targets",
            "--no-progress",
            "--config",
            str(local_cloud.options.state_dir / "local.json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = local_cloud.state["api_url"]
    counts = {}
    for date_id in (478, 479, 480):
        counts[date_id] = wait_for_total(
            f"{api}/stock_data/?date_id={date_id}&page_size=1", 11_000, timeout=120
        )["total_results"]
    assert counts == {478: 11_000, 479: 11_000, 480: 11_000}
    with_target = {
        d: wait_for_total(f"{api}/stock_data/?date_id={d}&has_target=true&page_size=1", 11_000, timeout=60)[
            "total_results"
        ]
        for d in (478, 479)
    }
    assert with_target == {478: 11_000, 479: 11_000}
    _, sample = http("GET", f"{api}/stock_data/?date_id=478&seconds_in_bucket=0&stock_id=1")
    assert sample["data"][0]["target"] == -1.8697977


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/stock_data/",
            {
                "data": [
                    {
                        "stock_id": 1,
                        "date_id": 3_000_000_000,
                        "seconds_in_bucket": 0,
                        "imbalance_buy_sell_flag": 0,
                        **dict.fromkeys(FEATURES),
                    }
                ]
            },
            "data.0.date_id",
        ),
        (
            "/date_mappings/",
            {"data": [{"date_id": 3_000_000_000, "trading_date": "2024-01-02"}]},
            "data.0.date_id",
        ),
        (
            "/models/",
            {
                "name": "m",
                "version": 3_000_000_000,
                "artifact_uri": "s3://closecast-databucket/m",
                "feature_set": "v1",
            },
            "version",
        ),
        (
            "/models/",
            {"name": "m", "artifact_uri": "s3://closecast-databucket/m\u0000", "feature_set": "v1"},
            "artifact_uri",
        ),
        (
            "/models/",
            {
                "name": "m",
                "artifact_uri": "s3://closecast-databucket/m",
                "feature_set": "v1",
                "params": {"x": "a\u0000b"},
            },
            "params",
        ),
        (
            "/model-inferences/",
            {
                "model_id": 1,
                "date_id": 3_000_000_000,
                "n_rows": 1,
                "predictions_uri": "s3://closecast-databucket/p",
            },
            "date_id",
        ),
    ],
    ids=["stock-date", "mapping-date", "model-version", "nul-uri", "nul-params", "inference-date"],
)
def test_values_the_database_cannot_hold_are_422_naming_the_field(
    local_cloud: Any, path: str, body: Any, field: str
) -> None:
    """Given a POST whose value is out of the column's range or holds a NUL, then 422 names the field (not a
    500 from the database)."""
    status, answer = http("POST", local_cloud.state["api_url"] + path, body)
    assert status == 422, answer
    assert [e["field"] for e in answer["errors"]] == [field]


def raw_request(url: str, method: str, body: bytes, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": content_type, **HEADERS}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_nan_in_json_body_invalid_json_and_other_media_types_get_clear_4xx(local_cloud: Any) -> None:
    """Given a body with NaN, a body that is not JSON, a body that is not UTF-8 and a text/plain body, then
    each gets a 4xx in the documented error shape (never a 500 or a dropped connection)."""
    url = local_cloud.state["api_url"] + "/models/"
    nan = b'{"name": "m", "artifact_uri": "s3://closecast-databucket/m", "feature_set": "v1", "params": {"x": NaN}}'
    status, body = raw_request(url, "POST", nan, "application/json")
    assert status == 422 and body["errors"][0]["field"] == "params"
    status, body = raw_request(url, "POST", b'{"name": ', "application/json")
    assert status == 422 and body["errors"][0]["field"] is None and "JSON" in body["errors"][0]["message"]
    status, body = raw_request(url, "POST", b"\xff\xfe{}", "application/json")
    assert 400 <= status < 500 and "errors" in body
    status, body = raw_request(url, "POST", b"name=m", "text/plain")
    assert status == 415 and body["errors"][0]["field"] == "content-type"


def test_a_huge_page_number_is_refused_not_crashing(local_cloud: Any) -> None:
    """Given page and ids beyond what the database's integers hold, then 422 naming them."""
    api = local_cloud.state["api_url"]
    for query, field in (("page=99999999999999999999", "page"), ("date_id=99999999999999999999", "date_id")):
        status, body = http("GET", f"{api}/stock_data/?{query}")
        assert status == 422 and body["errors"][0]["field"] == field


def raw_http(cloud: Any, request: bytes) -> bytes:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(cloud.state["api_url"])
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or len(received) < received.index(b"\r\n\r\n") + 4:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_the_gateway_answers_bad_framing_with_400_and_reads_chunked_bodies(local_cloud: Any) -> None:
    """Given a request with a Content-Length that is not a number, then 400; given a chunked JSON body, then
    the function receives it whole."""
    bad = raw_http(local_cloud, b"POST /models/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}")
    assert bad.startswith(b"HTTP/1.1 400")
    body = json.dumps({"data": [{"date_id": 901, "trading_date": "2024-01-03"}]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    answer = raw_http(
        local_cloud,
        b"POST /date_mappings/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()).encode()
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunked,
    )
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]


def test_the_templates_schedule_runs_the_daily_sweep_through_the_local_runtime(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Given a local cloud of its own (nothing to sweep; event sources off so nothing else runs), then it keeps
    a runner for the template's ChainSchedule whose next run is a weekday at 21:30 UTC; when that runner's clock
    reaches its due time, then the real ChainScheduleFunction runs with EventBridge's scheduled event and its
    sweep answers that there was nothing to start."""
    import threading
    from datetime import UTC, datetime, timedelta

    from closecast_tools.local.cloud import CloudOptions, LocalCloud
    from closecast_tools.local.schedule import ScheduleRunner

    options = CloudOptions(
        root=REPO, state_dir=tmp_path_factory.mktemp("schedule"), pollers=False, auth=False
    )
    with LocalCloud(options) as cloud:
        (runner,) = [r for r in cloud.schedules if r.function == "ChainScheduleFunction"]
        assert runner.schedule.expression == "cron(30 21 ? * MON-FRI *)"
        assert (
            cloud.state["schedules"]["ChainScheduleFunction.AfterClose"]["expression"]
            == runner.schedule.expression
        )
        due = runner.schedule.next_after(datetime.now(UTC))
        assert due is not None and due.weekday() < 5 and (due.hour, due.minute) == (21, 30)

        answers: list[Any] = []

        def invoke(function: str, event: Any) -> Any:
            answers.append((event, cloud.invoke(function, event)))
            return answers[-1][1]

        skew = (
            due - datetime.now(UTC) - timedelta(seconds=0.5)
        )  # this runner's clock: half a second before due
        shifted = ScheduleRunner(
            runner.function,
            runner.schedule,
            invoke,
            runner.rule_arn,
            runner.region,
            runner.account,
            threading.Event(),
            now=lambda: datetime.now(UTC) + skew,
        )
        thread = threading.Thread(target=shifted.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not answers and time.monotonic() < deadline:
            time.sleep(0.1)
        shifted.stop.set()
        thread.join(timeout=10)
    assert len(answers) == 1
    event, answer = answers[0]
    assert answer.ok, answer.error_message
    assert event["detail-type"] == "Scheduled Event" and event["time"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert answer.payload == {"started": [], "resent": [], "incomplete": {}}
    assert shifted.stats.runs == 1 and shifted.stats.failures == 0
