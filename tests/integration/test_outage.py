"""No row lost in a long outage: the database stopped while records flow, the ingest mapping's retries, the
on-failure queue and `closecast redrive`, against the whole local cloud (real PostgreSQL stopped and started)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from closecast_tools.local.cloud import CloudOptions, LocalCloud, client
from tests.integration.test_local_cloud import http, kaggle_rows, moved, put_envelopes, wait_for_total

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# Each ingest invocation waits 2 s for the database, so the budget the template had before (5 retries) runs
# out within about 15 s of an outage (instead of ~2 min 20 s with the 30 s default): the outage below lasts
# twice as long.
FAST_FAILURE = {"IngestDataApiRetrySeconds": "2"}
OLD_RETRY_BUDGET = 5
OUTAGE_S = 30


def start_cloud(tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, str]) -> LocalCloud:
    options = CloudOptions(
        root=REPO,
        state_dir=tmp_path_factory.mktemp("outage-state"),
        parameter_overrides=overrides,
        auth=False,  # sign-in is not the point here
        schedules=False,
    )
    return LocalCloud(options).start()


@pytest.fixture(scope="module")
def retrying_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """The template's own retry settings (until the records expire), failing fast inside each call."""
    cloud = start_cloud(tmp_path_factory, FAST_FAILURE)
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="module")
def giving_up_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A mapping that gives up after one retry, as a deployment with a finite budget would."""
    cloud = start_cloud(tmp_path_factory, {**FAST_FAILURE, "IngestMaximumRetryAttempts": "1"})
    try:
        yield cloud
    finally:
        cloud.stop()


def rows_of(cloud: LocalCloud, date_id: int) -> list[dict[str, Any]]:
    status, body = http("GET", f"{cloud.state['api_url']}/stock_data/?date_id={date_id}&page_size=1000")
    assert status == 200, body
    return list(body["data"])


def assert_stored_exactly(cloud: LocalCloud, sent: list[dict[str, Any]], date_id: int) -> None:
    stored = rows_of(cloud, date_id)
    assert len(stored) == len(sent)
    by_id = {r["row_id"]: r for r in sent}
    assert len({r["row_id"] for r in stored}) == len(stored)
    for got in stored:
        expected = by_id[got["row_id"]]
        assert {k: got[k] for k in expected} == expected


def queued(cloud: LocalCloud) -> int:
    """Messages on the ingest failure queue, visible or not."""
    sqs = client("sqs", cloud.state["aws_endpoint_url"])
    attributes = sqs.get_queue_attributes(
        QueueUrl=cloud.state["ingest_failure_queue_url"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_an_outage_longer_than_the_old_retry_budget_loses_no_row(
    retrying_cloud: LocalCloud, shared_data: Path
) -> None:
    """Given the database stopped while 5 snapshots (1,000 real rows) are put on the stream one by one, and kept
    down for 30 s (twice as long as the old budget of 5 retries lasts), when it comes back, then every row is
    stored exactly once with its values, the mapping retried more often than the old budget allowed, and
    nothing went to the on-failure queue."""
    cloud = retrying_cloud
    rows = moved(kaggle_rows(shared_data, 478, {0, 10, 20, 30, 40}), 8100)
    stats = cloud.mapping_stats["IngestFunction:Kinesis"]
    cloud.stop_database()
    try:
        down_at = time.monotonic()
        for seconds in (0, 10, 20, 30, 40):
            put_envelopes(cloud, [r for r in rows if r["seconds_in_bucket"] == seconds])
            time.sleep(2)
        while time.monotonic() - down_at < OUTAGE_S:
            time.sleep(0.5)
        retries_during_outage = stats.retries
    finally:
        cloud.start_database()
    wait_for_total(f"{cloud.state['api_url']}/stock_data/?date_id=8100", len(rows), timeout=120)
    assert_stored_exactly(cloud, rows, 8100)
    assert retries_during_outage > OLD_RETRY_BUDGET
    assert stats.sent_to_destination == 0 and queued(cloud) == 0


def redrive(cloud: LocalCloud) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "closecast_tools.cli", "redrive", "--state-dir", str(cloud.options.state_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_range_sent_to_the_failure_queue_is_stored_by_redrive_and_redriving_again_changes_nothing(
    giving_up_cloud: LocalCloud, shared_data: Path
) -> None:
    """Given a mapping that gives up after one retry and the database down while a snapshot (200 rows) arrives,
    so that its range reaches the on-failure queue and the shard moves on, when the database is back and
    `closecast redrive` runs, then the 200 rows are stored with their values and the queue is empty; the same
    range redriven again (its message put back, as after a crash before the delete) changes nothing."""
    cloud = giving_up_cloud
    rows = moved(kaggle_rows(shared_data, 479, {300}), 8200)
    stats = cloud.mapping_stats["IngestFunction:Kinesis"]
    cloud.stop_database()
    try:
        put_envelopes(cloud, rows)
        deadline = time.monotonic() + 120
        while stats.sent_to_destination == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        cloud.start_database()
    assert stats.sent_to_destination == 1 and queued(cloud) == 1
    marker = moved(rows[:1], 8201)  # behind the range on the same shard: the shard moved on
    put_envelopes(cloud, marker)
    wait_for_total(f"{cloud.state['api_url']}/stock_data/?date_id=8201", 1)
    assert rows_of(cloud, 8200) == []
    sqs = client("sqs", cloud.state["aws_endpoint_url"])
    queue_url = cloud.state["ingest_failure_queue_url"]
    (message,) = sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=0)["Messages"]
    assert json.loads(message["Body"])["KinesisBatchInfo"]["batchSize"] == 1

    done = redrive(cloud)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 range(s), 1 record(s) stored or quarantined; 0 kept" in done.stdout
    assert_stored_exactly(cloud, rows, 8200)
    assert queued(cloud) == 0
    before = rows_of(cloud, 8200)

    sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
    again = redrive(cloud)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 range(s), 1 record(s) stored or quarantined; 0 kept" in again.stdout
    assert rows_of(cloud, 8200) == before and queued(cloud) == 0
    assert redrive(cloud).stdout.startswith("redrive: 0 message(s)")


def test_redrive_without_a_running_cloud_says_so(tmp_path: Path) -> None:
    """Given no local cloud for a state directory, when redrive runs, then it exits 2 saying to start one."""
    done = subprocess.run(
        [sys.executable, "-m", "closecast_tools.cli", "redrive", "--state-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "closecast up" in done.stderr
