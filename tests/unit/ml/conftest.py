"""Fixtures of the ML unit tests: small generated markets (the generator is deterministic per seed)."""

from __future__ import annotations

import pandas as pd
import pytest

from closecast_ml import training
from closecast_ml.model import ModelArtifact

SMALL = {"max_depth": 3, "eta": 0.2}


@pytest.fixture(scope="session")
def market() -> pd.DataFrame:
    """8 days x 40 stocks of the synthetic market (with targets and the oracle)."""
    from closecast_tools.market.generate import generate_frame

    return generate_frame(8, seed=11, n_stocks=40)


@pytest.fixture(scope="session")
def one_day(market: pd.DataFrame) -> pd.DataFrame:
    return market[market["date_id"] == 7].reset_index(drop=True)


@pytest.fixture(scope="session")
def small_model(market: pd.DataFrame) -> ModelArtifact:
    """A `full` model fitted on days 0..5 (day 5 held out for validation and not trained on), 40 rounds at most."""
    return training.fit(
        market[market["date_id"] <= 5], params=SMALL, valid_days=1, n_rounds=40, final_all_days=False
    )
