"""Fixtures of the market unit tests: the real Kaggle example files and small generated markets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
EXAMPLE = SHARED_DATA / "kaggle-example"
CALIBRATION_DAYS = 60


@pytest.fixture(scope="session")
def kaggle_example() -> Path:
    """The competition's example_test_files (test.csv, revealed_targets.csv), read in place from shared/."""
    if not (EXAMPLE / "test.csv").is_file() or not (EXAMPLE / "revealed_targets.csv").is_file():
        pytest.skip(
            f"the real Kaggle example files are not at {EXAMPLE.resolve()} (shared/data/kaggle-example)"
        )
    return EXAMPLE


@pytest.fixture(scope="session")
def example_frame(kaggle_example: Path) -> pd.DataFrame:
    from closecast_ml.kaggle import load_kaggle

    return load_kaggle([kaggle_example / "test.csv", kaggle_example / "revealed_targets.csv"]).frame


@pytest.fixture(scope="session")
def generated() -> dict[int, pd.DataFrame]:
    """60 days x 200 stocks for seeds 1, 2, 3 (about 0.3 s each)."""
    from closecast_tools.market.generate import generate_frame

    return {seed: generate_frame(CALIBRATION_DAYS, seed) for seed in (1, 2, 3)}
