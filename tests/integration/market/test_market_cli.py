"""`closecast generate`, `market-report` and `replay` as a user runs them (through the CLI dispatcher)."""

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


def _replay_offline(*args: str) -> int:
    """`closecast replay` pointed at an endpoint nothing listens on: only checks before sending can pass."""
    return main(["replay", *args, "--endpoint-url", "http://127.0.0.1:9", "--stream", "s", "--no-progress"])


def test_replay_refuses_a_from_date_after_the_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a generated market
    main(["generate", "--days", "1", "--seed", "3", "--out", str(tmp_path / "m"), "--stocks", "5"])
    capsys.readouterr()
    # When replayed with --from-date 5 --to-date 3 / Then exit 2 saying the range is reversed
    code = _replay_offline(str(tmp_path / "m"), "--from-date", "5", "--to-date", "3")
    assert code == 2
    assert "--from-date 5 is after --to-date 3" in capsys.readouterr().err


def test_replay_of_a_date_range_without_rows_names_the_dates_the_dataset_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a generated market of date_id 0..1
    main(["generate", "--days", "2", "--seed", "3", "--out", str(tmp_path / "m"), "--stocks", "5"])
    capsys.readouterr()
    # When days 10..20 are replayed / Then exit 2 saying the dataset holds date_id 0..1
    code = _replay_offline(str(tmp_path / "m"), "--from-date", "10", "--to-date", "20")
    assert code == 2
    err = capsys.readouterr().err
    assert "no rows in date_id 10..20" in err and "date_id 0..1" in err


def test_replay_of_kaggle_files_without_rows_in_the_range_names_their_dates(
    kaggle_example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the real test.csv (date_id 478..480) / When days 0..100 are replayed
    code = _replay_offline(str(kaggle_example / "test.csv"), "--to-date", "100")
    # Then exit 2 saying the files hold date_id 478..480
    assert code == 2
    err = capsys.readouterr().err
    assert "no rows in date_id 0..100" in err and "date_id 478..480" in err


def test_replay_of_a_file_with_a_short_row_exits_2_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a test.csv whose last line was cut off inside its fields
    header = "stock_id,date_id,seconds_in_bucket,imbalance_size,imbalance_buy_sell_flag,reference_price,"
    header += "matched_size,far_price,near_price,bid_price,bid_size,ask_price,ask_size,wap,time_id,row_id"
    good = "0,5,10,100.0,1,1.0001,2000.0,,,0.9999,10.0,1.0002,20.0,1.0,276,5_10_0"
    path = tmp_path / "test.csv"
    path.write_text(f"{header}\n{good}\n1,5,10,100.0,1,1.0001,20")
    # When replayed / Then exit 2 with the file, line and missing column, and no traceback
    code = _replay_offline(str(path))
    assert code == 2
    assert f"{path}, line 3, column far_price" in capsys.readouterr().err


def test_generate_onto_an_existing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given --out naming a file that exists
    target = tmp_path / "taken"
    target.write_text("mine\n")
    # When generating / Then exit 2 with a clear message, and the file is untouched
    code = main(["generate", "--days", "1", "--seed", "1", "--out", str(target), "--stocks", "5"])
    assert code == 2
    assert f"--out {target} exists and is not a directory" in capsys.readouterr().err
    assert target.read_text() == "mine\n"


def test_generate_with_params_writes_them_to_the_manifest(tmp_path: Path) -> None:
    # Given --params turning the order-flow signal off
    out = tmp_path / "m"
    code = main(["generate", "--days", "1", "--seed", "3", "--out", str(out), "--params", '{"c_f": 0}'])
    # Then the market is written and its manifest records the parameters used
    assert code == 0
    assert json.loads((out / "manifest.json").read_text())["params"]["c_f"] == 0.0


def test_show_params_prints_the_defaults_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    # Given --show-params with an override / Then the parameters come out as JSON, the override applied
    assert main(["generate", "--show-params", "--params", '{"c_r": -0.05}']) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["c_r"] == -0.05 and shown["c_f"] > 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{"c_q": 1}', "unknown parameter(s) c_q"),
        ("{", "--params: not JSON"),
        ("missing.json", "No such file"),
    ],
)
def test_generate_refuses_bad_params_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, message: str
) -> None:
    # Given bad --params / Then exit code 2, the reason on stderr, nothing written
    out = tmp_path / "m"
    code = main(["generate", "--days", "1", "--seed", "3", "--out", str(out), "--params", params])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_market_report_scores_three_models_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kaggle_example: Path
) -> None:
    # Given a small generated market (8 days x 40 stocks)
    main(["generate", "--days", "8", "--seed", "5", "--out", str(tmp_path / "m"), "--stocks", "40"])
    # When the report trains on 5 days, refits every 2 days (half-life 3 days), and scores the real days too
    code = main(
        [
            "market-report", "--data", str(tmp_path / "m"), "--train-days", "5", "--refit-every", "2",
            "--half-life", "3", "--real", str(kaggle_example), "--json", str(tmp_path / "r.json"),
        ]
    )  # fmt: skip
    # Then it prints and writes the three models' captured fractions and the real days' MAE beside zero
    assert code == 0
    printed = capsys.readouterr().out
    assert "(a) current row, frozen" in printed and "real day 479" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["models"]) == {"current_row", "with_history", "with_history_refitted"}
    assert report["oracle_mae"] < report["zero_mae"]
    for model in report["models"].values():
        gap = report["zero_mae"] - report["oracle_mae"]
        assert model["captured"] == pytest.approx((report["zero_mae"] - model["mae"]) / gap, abs=1e-3)
    assert set(report["real"]["days"]) == {"478", "479"}
    assert report["real"]["zero_mae"] == pytest.approx(5.467, abs=1e-3)


def test_market_report_on_kaggle_files_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kaggle_example: Path
) -> None:
    # Given data without an oracle (the real example files) / Then the report refuses with exit code 2
    assert main(["market-report", "--data", str(kaggle_example), "--train-days", "1"]) == 2
    assert "not a generated market" in capsys.readouterr().err
