"""Targets from their definition, checked against the real revealed targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast_ml.targets import compute_targets, load_index_weights

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("date_id", [478, 479])
def test_recomputed_targets_match_the_revealed_ones_within_002_bps(
    example_frame: pd.DataFrame, date_id: int
) -> None:
    # Given a real day with revealed targets
    day = example_frame[example_frame.date_id == date_id]
    # When its targets are recomputed from the WAPs and the shipped weights
    computed = compute_targets(day)
    # Then every row whose t+60 lies inside the auction (9,800) matches within 0.02 bps
    inside = computed.notna()
    assert inside.sum() == 9_800
    assert np.abs(computed[inside] - day.loc[inside, "target"]).max() < 0.02


@pytest.mark.parametrize(("date_id", "mae"), [(478, 5.21), (479, 5.72)])
def test_predicting_zero_gives_the_known_mae(example_frame: pd.DataFrame, date_id: int, mae: float) -> None:
    # Given the revealed targets of a real day / Then predicting zero scores the published MAE
    day = example_frame[example_frame.date_id == date_id]
    assert round(day["target"].abs().mean(), 2) == mae


def test_last_six_snapshots_have_no_target(example_frame: pd.DataFrame) -> None:
    # Given a day / Then the seconds 490..540 need WAPs after the auction: NaN
    computed = compute_targets(example_frame)
    late = example_frame.seconds_in_bucket > 480
    assert computed[late].isna().all()
    assert computed[~late].notna().all()


def test_row_order_does_not_matter(example_frame: pd.DataFrame) -> None:
    # Given the rows shuffled / Then each row gets the same target
    shuffled = example_frame.sample(frac=1.0, random_state=3)
    pd.testing.assert_series_equal(compute_targets(shuffled).sort_index(), compute_targets(example_frame))


def test_index_is_over_the_stocks_present() -> None:
    # Given 3 stocks, stock 2 absent at every second, and weights 1, 1, 98
    rows = []
    for seconds in (0, 60):
        for stock, wap in ((0, 1.0 if seconds == 0 else 1.01), (1, 1.0 if seconds == 0 else 0.99)):
            rows.append({"date_id": 0, "seconds_in_bucket": seconds, "stock_id": stock, "wap": wap})
    frame = pd.DataFrame(rows)
    # When the targets are computed
    targets = compute_targets(frame, weights=np.array([1.0, 1.0, 98.0]))
    # Then the index moves by the mean of the two present stocks (0): targets are +-100 bps
    at_zero = targets[frame.seconds_in_bucket == 0].to_numpy()
    np.testing.assert_allclose(at_zero, [100.0, -100.0])


def test_shipped_weights_are_the_reference_table() -> None:
    # Given the weights inside the library / Then they are the 200 reference weights, summing to 1
    weights = load_index_weights()
    assert len(weights) == 200
    assert weights.sum() == pytest.approx(1.0)
    reference = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "index_weights.csv"
    if reference.is_file():
        np.testing.assert_array_equal(weights.to_numpy(), pd.read_csv(reference)["weight"].to_numpy())


def test_duplicate_keys_are_refused() -> None:
    # Given two rows for stock 0 at second 0 of day 0, with different WAPs
    frame = pd.DataFrame(
        {"date_id": [0, 0], "seconds_in_bucket": [0, 0], "stock_id": [0, 0], "wap": [1.0, 1.1]}
    )
    # When the targets are computed / Then a clear error names the repeated key
    with pytest.raises(ValueError, match=r"not unique.*date_id 0, seconds_in_bucket 0, stock_id 0"):
        compute_targets(frame, weights=np.array([1.0]))
