"""`closecast generate` and `closecast replay` as a user runs them (through the CLI dispatcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from closecast_tools.cli import main

pytestmark = pytest.mark.integration


def test_generate_then_replay_onto_the_local_stream(
    tmp_path: Path,
    kinesis: Any,
    read_stream: Any,
    kinesis_endpoint: str,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a generated market and a local cloud config naming the stream
    assert (
        main(["generate", "--days", "2", "--seed", "3", "--out", str(tmp_path / "m"), "--stocks", "20"]) == 0
    )
    config = tmp_path / "local.json"
    config.write_text(
        json.dumps({"aws_endpoint_url": kinesis_endpoint, "region": "us-east-1", "stream_name": stream})
    )
    # When day 1 is replayed with the defaults (local cloud, row shape, max speed)
    code = main(["replay", str(tmp_path / "m"), "--config", str(config), "--from-date", "1", "--no-progress"])
    # Then it succeeds, says what it sent, and the stream holds day 1's 20 x 55 rows
    assert code == 0
    assert "replayed 1100 rows" in capsys.readouterr().out
    bodies = [body for records in read_stream(kinesis, stream).values() for _, body in records]
    assert len(bodies) == 1100 and {b["date_id"] for b in bodies} == {1}


def test_replay_to_a_missing_stream_exits_non_zero_saying_what_was_not_sent(
    tmp_path: Path, kinesis_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stream name that does not exist
    main(["generate", "--days", "1", "--seed", "3", "--out", str(tmp_path / "m"), "--stocks", "10"])
    # When replayed to it
    code = main(
        [
            "replay",
            str(tmp_path / "m"),
            "--endpoint-url",
            kinesis_endpoint,
            "--stream",
            "nope",
            "--no-progress",
        ]
    )
    # Then the command fails and says every row was not sent
    assert code == 1
    assert "550 rows and 0 revealed targets were not sent" in capsys.readouterr().err


def test_generate_csv_format(tmp_path: Path) -> None:
    # Given --format csv / Then train.csv, oracle.csv and manifest.json are written
    assert (
        main(["generate", "--days", "1", "--seed", "1", "--out", str(tmp_path / "c"), "--format", "csv"]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["manifest.json", "oracle.csv", "train.csv"]


def test_bad_kaggle_file_is_refused_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a CSV that is not Kaggle data / When replayed / Then exit 2 naming file, line and column
    bad = tmp_path / "train.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    code = main(
        ["replay", str(bad), "--endpoint-url", "http://127.0.0.1:9", "--stream", "s", "--no-progress"]
    )
    assert code == 2
    assert f"{bad}, line 1, column a" in capsys.readouterr().err
