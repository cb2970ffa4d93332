"""Data contract of the synthetic market: Kaggle schema, exact WAP and targets, calibration, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_ml.dataset import iter_days, read_dataset
from closecast_ml.kaggle import frame_dtypes, load_kaggle, validate_frame
from closecast_ml.targets import compute_targets
from closecast_tools.market.generate import generate_frame, write_dataset

pytestmark = pytest.mark.unit
SEEDS = (1, 2, 3)


def _kaggle(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(KAGGLE_COLUMNS)]


@pytest.mark.parametrize("seed", SEEDS)
def test_schema_dtypes_and_column_order(generated: dict[int, pd.DataFrame], seed: int) -> None:
    # Given a generated market / Then it has Kaggle's columns in order (+ oracle) with the loader's dtypes
    frame = generated[seed]
    assert tuple(frame.columns) == (*KAGGLE_COLUMNS, "oracle")
    assert {c: str(t) for c, t in _kaggle(frame).dtypes.items()} == frame_dtypes()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_row_passes_the_loader_rules(generated: dict[int, pd.DataFrame], seed: int) -> None:
    # Given a generated market / When validated with the loader's rules / Then no row is bad
    report = validate_frame(_kaggle(generated[seed]))
    assert report.bad_rows == 0, report.summary()


@pytest.mark.parametrize("seed", SEEDS)
def test_wap_is_exactly_kaggles_wap_on_every_row(generated: dict[int, pd.DataFrame], seed: int) -> None:
    # Given a generated market / Then wap == (bid*ask_size + ask*bid_size)/(bid_size+ask_size), bit for bit
    f = generated[seed]
    wap = (f.bid_price * f.ask_size + f.ask_price * f.bid_size) / (f.bid_size + f.ask_size)
    assert (wap.to_numpy() == f.wap.to_numpy()).all()


def test_prices_start_at_one(generated: dict[int, pd.DataFrame]) -> None:
    # Given a generated market / Then every stock's WAP at second 0 is 1.0 (to float rounding)
    first = generated[1][generated[1].seconds_in_bucket == 0]["wap"]
    assert np.abs(first - 1.0).max() < 1e-12


def test_null_pattern_of_far_and_near(generated: dict[int, pd.DataFrame]) -> None:
    # Given a generated market
    f = generated[1]
    early = f.seconds_in_bucket < 300
    # Then far/near are null before second 300; near always after, far mostly (some nulls); nothing else null
    assert f.loc[early, ["far_price", "near_price"]].isna().all().all()
    assert f.loc[~early, "near_price"].notna().all()
    far_missing = f.loc[~early, "far_price"].isna().mean()
    assert 0.005 < far_missing < 0.03
    others = [c for c in KAGGLE_COLUMNS if c not in ("far_price", "near_price", "target")]
    assert f[others].notna().all().all()


def test_row_id_and_time_id_follow_kaggle(generated: dict[int, pd.DataFrame]) -> None:
    # Given a generated market / Then time_id = date_id*55 + seconds/10 and row_id = "d_s_i" on every row
    f = generated[2]
    assert (f.time_id == f.date_id.astype(int) * 55 + f.seconds_in_bucket // 10).all()
    expected = f.date_id.astype(str) + "_" + f.seconds_in_bucket.astype(str) + "_" + f.stock_id.astype(str)
    assert (f.row_id == expected).all()


def test_rows_in_kaggle_order_with_55_snapshots_per_stock_day(generated: dict[int, pd.DataFrame]) -> None:
    # Given a generated market / Then rows are sorted like train.csv and each present stock-day is complete
    f = generated[1]
    keys = f[["date_id", "seconds_in_bucket", "stock_id"]].astype(int)
    assert keys.equals(keys.sort_values(["date_id", "seconds_in_bucket", "stock_id"]))
    per_stock_day = f.groupby(["date_id", "stock_id"]).size()
    assert (per_stock_day == 55).all()
    assert set(f.seconds_in_bucket.unique()) == set(range(0, 541, 10))


def test_a_few_stock_days_are_missing(generated: dict[int, pd.DataFrame]) -> None:
    # Given 60 days x 200 stocks / Then about 1% of stock-days are absent (real data: 964 of 96,200)
    stock_days = generated[1].groupby(["date_id", "stock_id"]).ngroups
    missing = 1 - stock_days / (60 * 200)
    assert 0.003 < missing < 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_stored_targets_equal_targets_recomputed_from_the_waps(
    generated: dict[int, pd.DataFrame], seed: int
) -> None:
    # Given a generated market / When targets are recomputed from its WAPs with the shipped weights
    f = generated[seed]
    recomputed = compute_targets(f)
    inside = recomputed.notna()
    # Then they equal the stored ones; and the last six snapshots have targets too (simulated past 540)
    np.testing.assert_allclose(recomputed[inside], f.target[inside], rtol=0, atol=1e-9)
    assert f.target.notna().all()


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_mae_is_088_to_092_of_predicting_zero(generated: dict[int, pd.DataFrame], seed: int) -> None:
    # Given a generated market (60 days) / Then the oracle's MAE is 0.88-0.92 of predicting zero's
    f = generated[seed]
    ratio = (f.target - f.oracle).abs().mean() / f.target.abs().mean()
    assert 0.88 <= ratio <= 0.92


@pytest.mark.parametrize("seed", SEEDS)
def test_target_std_is_9_to_10_bps(generated: dict[int, pd.DataFrame], seed: int) -> None:
    # Given a generated market / Then the target's standard deviation is 9-10 bps, with fat tails
    target = generated[seed].target
    assert 9.0 <= target.std() <= 10.0
    assert np.abs(target).max() > 10 * target.std()


def test_oracle_is_unbiased_in_every_decile(generated: dict[int, pd.DataFrame]) -> None:
    # Given the oracle, the conditional expectation of the target
    f = pd.concat(generated.values())
    deciles = pd.qcut(f.oracle, 10, labels=False)
    # Then target - oracle averages ~0 within each decile of the oracle (a biased oracle would drift)
    residual = (f.target - f.oracle).groupby(deciles).mean()
    assert residual.abs().max() < 0.15


def within(value: float, real: float, tolerance: float) -> bool:
    return abs(value / real - 1) <= tolerance


@pytest.mark.parametrize("seed", SEEDS)
def test_sizes_and_flags_look_like_the_real_market(generated: dict[int, pd.DataFrame], seed: int) -> None:
    # Given a generated market / Then flag shares and size medians are within 25 % of the real statistics
    # (shared/data/README.md: imbalance 1.1M, matched 12.9M, bid/ask 22k; flag 39 % / 40 % / 22 %)
    f = generated[seed]
    shares = f.imbalance_buy_sell_flag.value_counts(normalize=True)
    assert 0.33 < shares[1] < 0.45 and 0.33 < shares[-1] < 0.45 and 0.15 < shares[0] < 0.28
    assert (f.loc[f.imbalance_buy_sell_flag == 0, "imbalance_size"] == 0).all()
    assert within(f.imbalance_size.median(), 1.1e6, 0.25)
    assert within(f.matched_size.median(), 12.9e6, 0.25)
    assert within(f.bid_size.median(), 22e3, 0.25) and within(f.ask_size.median(), 22e3, 0.25)
    assert (f.ask_price > f.bid_price).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_prices_and_targets_are_shaped_like_the_real_market(
    generated: dict[int, pd.DataFrame], seed: int
) -> None:
    # Given a generated market / Then the spreads of prices and the target's quartiles and mean absolute value
    # are near the real ones (README: wap std 0.0025, near_price std 0.012, target quartiles -4.56 / 4.41,
    # predicting zero MAE about 6.4; the real test.csv has reference/wap - 1 with a std of about 4.2 bps)
    f = generated[seed]
    assert within(f.wap.std(), 0.0025, 0.25)
    assert within(f.near_price.std(), 0.012, 0.25)
    assert 3e-4 < (f.reference_price / f.wap - 1).std() < 6e-4
    q1, q3 = f.target.quantile([0.25, 0.75])
    assert within(-q1, 4.56, 0.15) and within(q3, 4.41, 0.15)
    assert within(f.target.abs().mean(), 6.4, 0.1)


def test_same_seed_same_market_other_seed_other_market() -> None:
    # Given two runs with seed 7 and one with seed 8 / Then the first two are identical, the third differs
    a, b, c = generate_frame(3, 7), generate_frame(3, 7), generate_frame(3, 8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.wap.to_numpy()[:1000], c.wap.to_numpy()[:1000])


def test_a_day_does_not_depend_on_how_many_days_are_generated() -> None:
    # Given 2 days and 4 days with the same seed / Then the first two days are the same
    short, long = generate_frame(2, 5), generate_frame(4, 5)
    pd.testing.assert_frame_equal(short, long[long.date_id < 2].reset_index(drop=True))


def test_parquet_dataset_round_trips_with_manifest(tmp_path: Path) -> None:
    # Given `write_dataset` in Parquet / When read back / Then the frame equals the in-memory market
    summary = write_dataset(tmp_path / "m", days=3, seed=4)
    frame = read_dataset(tmp_path / "m")
    pd.testing.assert_frame_equal(frame, generate_frame(3, 4))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("seed", "days", "stocks", "rows", "format")} == {
        "seed": 4,
        "days": 3,
        "stocks": 200,
        "rows": summary.rows,
        "format": "parquet",
    }


def test_csv_dataset_is_kaggle_csv_plus_oracle_csv(tmp_path: Path) -> None:
    # Given `write_dataset` in CSV
    write_dataset(tmp_path / "c", days=2, seed=4, fmt="csv")
    # Then train.csv is a Kaggle train.csv the loader reads without complaint, and oracle.csv is row_id,oracle
    assert (tmp_path / "c" / "train.csv").read_text().splitlines()[0] == ",".join(KAGGLE_COLUMNS)
    assert (tmp_path / "c" / "oracle.csv").read_text().splitlines()[0] == "row_id,oracle"
    loaded = load_kaggle(tmp_path / "c" / "train.csv")
    assert loaded.report.bad_rows == 0
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "c"), generate_frame(2, 4))


def test_reading_a_date_range_and_day_by_day(tmp_path: Path) -> None:
    # Given a 4-day Parquet dataset / When days 1..2 are read, and then iterated / Then only those come back
    write_dataset(tmp_path / "m", days=4, seed=4)
    assert set(read_dataset(tmp_path / "m", date_range=(1, 2)).date_id) == {1, 2}
    assert [int(day.date_id.iloc[0]) for day in iter_days(tmp_path / "m", block_days=3)] == [0, 1, 2, 3]


def test_fewer_stocks(tmp_path: Path) -> None:
    # Given --stocks 20 / Then only stock ids 0..19 appear, and their days are the same as with 200 stocks
    small = generate_frame(1, 9, n_stocks=20)
    assert small.stock_id.max() <= 19
    full = generate_frame(1, 9)
    pd.testing.assert_series_equal(
        small.wap.reset_index(drop=True), full[full.stock_id < 20].wap.reset_index(drop=True)
    )
