"""Replay without a stream: record shapes, size limits, batching, pacing, failure accounting (fake client)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_tools.market.commands import parse_speed
from closecast_tools.market.generate import generate_frame
from closecast_tools.market.replay import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    Record,
    ReplayError,
    ReplayOptions,
    batches,
    replay,
    snapshot_records,
    target_records,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def two_days() -> pd.DataFrame:
    return generate_frame(2, 11).drop(columns="oracle")


def _snapshot(frame: pd.DataFrame, seconds: int = 300) -> pd.DataFrame:
    return frame[(frame.date_id == 0) & (frame.seconds_in_bucket == seconds)]


def test_row_record_is_one_kaggle_row_with_nulls_and_stock_partition_key(two_days: pd.DataFrame) -> None:
    # Given the snapshot at second 300 of day 0, where some far prices are null
    snap = _snapshot(two_days)
    # When shaped as row records
    records = snapshot_records(snap, "row")
    # Then one record per row, keyed by stock id, with every Kaggle column as JSON numbers or null
    assert len(records) == len(snap)
    first = json.loads(records[0].data)
    assert list(first) == list(KAGGLE_COLUMNS)
    assert records[0].partition_key == str(first["stock_id"])
    assert first["wap"] == snap.wap.iloc[0] and isinstance(first["imbalance_buy_sell_flag"], int)
    nulls = [json.loads(r.data)["far_price"] for r in records]
    assert nulls.count(None) == snap.far_price.isna().sum()


def test_envelope_record_holds_the_whole_snapshot(two_days: pd.DataFrame) -> None:
    # Given a snapshot / When shaped as an envelope / Then one record {"data": rows, "commit": true}
    snap = _snapshot(two_days, 120)
    [record] = snapshot_records(snap, "envelope")
    body = json.loads(record.data)
    assert body["commit"] is True
    assert [row["row_id"] for row in body["data"]] == snap.row_id.tolist()
    assert record.partition_key == "0_120"


def test_envelope_too_big_for_one_record_is_split_under_1_mib() -> None:
    # Given a snapshot of 6,000 rows (about 2.4 MB of JSON)
    big = pd.concat([generate_frame(1, 3)] * 1).drop(columns="oracle")
    snap = big[big.seconds_in_bucket == 0]
    snap = pd.concat([snap] * 30, ignore_index=True)
    # When shaped as an envelope
    records = snapshot_records(snap, "envelope")
    # Then it is split into several envelopes, each under 1 MiB, together carrying every row once
    assert len(records) > 1
    assert all(r.size <= MAX_RECORD_BYTES for r in records)
    assert sum(len(json.loads(r.data)["data"]) for r in records) == len(snap) == sum(r.rows for r in records)


def test_revealed_targets_record_shape(two_days: pd.DataFrame) -> None:
    # Given day 0 / When its targets are shaped / Then {"revealed_targets": [...]} keyed targets_0, all of them
    day = two_days[two_days.date_id == 0]
    records = target_records(day)
    items = [item for r in records for item in json.loads(r.data)["revealed_targets"]]
    assert {r.partition_key for r in records} == {"targets_0"}
    assert len(items) == len(day)
    assert set(items[0]) == {"date_id", "seconds_in_bucket", "stock_id", "target"}
    assert all(r.size <= MAX_RECORD_BYTES for r in records)


def test_rows_carry_no_target_when_targets_are_revealed_separately(two_days: pd.DataFrame) -> None:
    # Given --reveal-targets / Then the snapshot rows are sent without the target key
    records = snapshot_records(_snapshot(two_days), "row", with_target=False)
    assert "target" not in json.loads(records[0].data)


def test_batches_respect_500_records_and_5_mib() -> None:
    # Given 1,200 small records and 12 records of 900 KB
    small = [Record(b"x" * 10, str(i), rows=1) for i in range(1200)]
    large = [Record(b"y" * 900_000, str(i), rows=1) for i in range(12)]
    # Then batches hold at most 500 records and 5 MiB, and keep the order
    small_batches = list(batches(small))
    assert [len(b) for b in small_batches] == [500, 500, 200]
    large_batches = list(batches(large))
    assert all(sum(r.size for r in b) <= MAX_BATCH_BYTES for b in large_batches)
    assert max(len(b) for b in small_batches) <= MAX_BATCH_RECORDS
    assert [r for b in large_batches for r in b] == large


class FakeKinesis:
    """Records what it receives; `fail(call, position)` decides which records come back failed."""

    def __init__(self, fail: Any = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail or (lambda call, position: False)

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        call = len(self.calls)
        self.calls.append(Records)
        results = []
        for position, _ in enumerate(Records):
            if self.fail(call, position):
                results.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
                )
            else:
                results.append({"SequenceNumber": str(call * 1000 + position), "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def _options(**kwargs: Any) -> ReplayOptions:
    return ReplayOptions(progress=False, sleep=lambda seconds: None, **kwargs)


def test_pacing_waits_ten_seconds_of_data_time_divided_by_speed(two_days: pd.DataFrame) -> None:
    # Given a fake clock and speed x100
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    day = two_days[(two_days.date_id == 0) & (two_days.seconds_in_bucket <= 40)]
    options = ReplayOptions(speed=100.0, progress=False, sleep=sleep, clock=lambda: now[0], shape="envelope")
    # When 5 snapshots are replayed
    replay([day], FakeKinesis(), "s", options)
    # Then each snapshot after the first left 0.1 s after the one before
    assert waits == pytest.approx([0.1] * 4)


def test_summary_counts_rows_records_batches(two_days: pd.DataFrame) -> None:
    # Given two days replayed as rows onto a stream that accepts everything
    summary = replay([two_days], FakeKinesis(), "s", _options())
    # Then every row is counted once; one batch per snapshot; no retry
    assert (summary.rows, summary.records, summary.retries) == (len(two_days), len(two_days), 0)
    assert summary.batches == summary.snapshots == 110 and summary.days == 2


def test_failed_records_are_sent_again_until_they_land(two_days: pd.DataFrame) -> None:
    # Given a stream that fails every third record on the first two calls
    client = FakeKinesis(fail=lambda call, position: call < 2 and position % 3 == 0)
    day = two_days[two_days.date_id == 0]
    # When replayed
    summary = replay([day], client, "s", _options())
    # Then every row is in exactly one successful put, and the retries are counted
    assert summary.rows == len(day)
    assert summary.retries > 0
    assert summary.errors == {"ProvisionedThroughputExceededException": summary.retries}


def test_records_that_never_land_stop_the_replay_with_the_exact_count(two_days: pd.DataFrame) -> None:
    # Given a stream that always fails records at positions 0 and 1 from the 3rd call on
    client = FakeKinesis(fail=lambda call, position: call >= 2 and position < 2)
    # When replayed with 3 attempts per record
    with pytest.raises(ReplayError) as raised:
        replay([two_days], client, "s", _options(max_attempts=3))
    summary = raised.value.summary
    # Then sent + not sent = all rows, and the message says how many were not sent
    assert summary.rows + summary.rows_not_sent == len(two_days)
    per_snapshot = int(((two_days.date_id == 0) & (two_days.seconds_in_bucket == 0)).sum())
    assert summary.rows == 3 * per_snapshot - 2  # two snapshots, then all but the two failing records
    assert summary.rows_not_sent == len(two_days) - summary.rows
    assert f"{summary.rows_not_sent} rows" in str(raised.value)


def test_failure_while_revealing_counts_the_targets_not_sent(two_days: pd.DataFrame) -> None:
    # Given a stream that refuses every record whose data is a revealed-targets record
    class RefuseTargets(FakeKinesis):
        def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
            self.fail = lambda call, position: b"revealed_targets" in Records[position]["Data"]
            return super().put_records(StreamName, Records)

    # When replayed with revealed targets
    with pytest.raises(ReplayError) as raised:
        replay([two_days], RefuseTargets(), "s", _options(reveal_targets=True, max_attempts=2))
    summary = raised.value.summary
    # Then day 0's rows landed, its targets did not, nor anything of day 1
    day0 = int((two_days.date_id == 0).sum())
    assert summary.rows == day0
    assert summary.targets_not_sent == len(two_days)
    assert summary.rows_not_sent == len(two_days) - day0


@pytest.mark.parametrize(("text", "speed"), [("max", None), ("realtime", 1.0), ("x10", 10.0), ("2.5", 2.5)])
def test_speed_option(text: str, speed: float | None) -> None:
    # Given a --speed value / Then it parses to the snapshot pace factor
    assert parse_speed(text) == speed


def test_frames_out_of_time_order_are_refused(two_days: pd.DataFrame) -> None:
    # Given day 1 before day 0 / Then the replay stops rather than send out of order, saying what was not sent
    days = [two_days[two_days.date_id == 1], two_days[two_days.date_id == 0]]
    with pytest.raises(ReplayError, match="out of time order") as raised:
        replay(days, FakeKinesis(), "s", _options(total_rows=len(two_days)))
    summary = raised.value.summary
    assert summary.rows == int((two_days.date_id == 1).sum())
    assert summary.rows + summary.rows_not_sent == len(two_days)


def test_ctrl_c_during_a_backoff_counts_each_row_once(two_days: pd.DataFrame) -> None:
    # Given a stream that fails half the records of the 3rd call, and Ctrl-C during the backoff that follows
    client = FakeKinesis(fail=lambda call, position: call == 2 and position % 2 == 0)

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    # When replayed
    with pytest.raises(ReplayError) as raised:
        replay([two_days], client, "s", ReplayOptions(progress=False, sleep=sleep))
    summary = raised.value.summary
    # Then the rows that landed in that call are not counted again as not sent: every row is counted once
    assert summary.rows + summary.rows_not_sent == len(two_days)
    assert summary.rows_in_doubt == 0


class InterruptedKinesis(FakeKinesis):
    """Ctrl-C arrives while the `at`-th PutRecords call is under way."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        if len(self.calls) == self.at:
            self.calls.append(Records)
            raise KeyboardInterrupt
        return super().put_records(StreamName, Records)


def test_ctrl_c_during_a_call_puts_that_call_in_doubt(two_days: pd.DataFrame) -> None:
    # Given Ctrl-C during the 4th PutRecords call (rows shape, one call per snapshot)
    client = InterruptedKinesis(at=3)
    # When replayed
    with pytest.raises(ReplayError) as raised:
        replay([two_days], client, "s", _options(total_rows=len(two_days)))
    summary = raised.value.summary
    # Then the interrupted call's rows are "in doubt" (they may have landed), the rest exactly not sent
    per_snapshot = len(client.calls[3])
    assert summary.rows == 3 * per_snapshot
    assert summary.rows_in_doubt == per_snapshot
    assert summary.rows + summary.rows_in_doubt + summary.rows_not_sent == len(two_days)
    assert "in doubt" in str(raised.value)


def test_a_source_that_fails_half_way_ends_with_the_count_not_a_traceback(two_days: pd.DataFrame) -> None:
    # Given a source whose second day cannot be read
    def frames() -> Any:
        yield two_days[two_days.date_id == 0]
        raise OSError("corrupt block")

    # When replayed
    with pytest.raises(ReplayError) as raised:
        replay(frames(), FakeKinesis(), "s", _options(total_rows=len(two_days)))
    # Then it says why, what landed, and how many rows were not sent
    summary = raised.value.summary
    assert "corrupt block" in str(raised.value)
    assert summary.rows == int((two_days.date_id == 0).sum())
    assert summary.rows_not_sent == len(two_days) - summary.rows
