"""The walk-forward backtest and its command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from closecast_tools.cli import main

pytestmark = pytest.mark.unit


def test_a_tiny_backtest_writes_its_table_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given 6 generated days of 30 stocks, when `closecast backtest --train-days 4` runs, then the JSON has every
    model with mae/captured/update_seconds, zero and oracle, one entry per walked day, and the PNG is a PNG."""
    assert (
        main(["generate", "--days", "6", "--seed", "5", "--stocks", "30", "--out", str(tmp_path / "m")]) == 0
    )
    code = main(
        ["backtest", "--data", str(tmp_path / "m"), "--train-days", "4", "--refit-every", "1", "--no-progress",
         "--json", str(tmp_path / "b.json"), "--png", str(tmp_path / "b.png")]
    )  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "b.json").read_text())
    assert set(result) == {"models", "zero", "oracle", "days"}
    assert set(result["models"]) == {"daily", "frozen", "refit", "seed"}
    zero, oracle = result["zero"]["mae"], result["oracle"]["mae"]
    for figures in result["models"].values():
        assert set(figures) == {"mae", "captured", "update_seconds"}
        assert figures["captured"] == pytest.approx((zero - figures["mae"]) / (zero - oracle))
    assert [day["date_id"] for day in result["days"]] == [4, 5]
    assert all({"daily", "frozen", "refit", "seed"} <= set(day) for day in result["days"])
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "daily" in table and "oracle" in table


def test_too_many_training_days_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Given 3 days, when asked to train on 3, then the command exits 2 and says the allowed range."""
    main(["generate", "--days", "3", "--seed", "5", "--stocks", "10", "--out", str(tmp_path / "m")])
    assert main(["backtest", "--data", str(tmp_path / "m"), "--train-days", "3", "--no-progress"]) == 2
    assert "--train-days must be in 1..2" in capsys.readouterr().err
