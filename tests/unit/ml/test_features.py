"""Features: one pure function of a day's rows up to each second, whole-day and snapshot by snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from closecast_ml.features import (
    DAY_FIT_FEATURES,
    DAY_FIT_HORIZONS,
    DAY_FIT_SIGNALS,
    FEATURE_SETS,
    GAP_PERSISTENCE,
    GAP_SD_IN_VOL,
    SnapshotFeaturizer,
    UnknownFeatureSet,
    _clearing_gap,
    day_features,
    feature_names,
    learn_stats,
)
from closecast_tools.market.params import MarketParams
from closecast_tools.market.regimes import regimes_for

pytestmark = pytest.mark.unit


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_snapshot_by_snapshot_features_are_identical_to_whole_day_features(
    market: pd.DataFrame, feature_set: str
) -> None:
    """Given two days of rows and the per-stock statistics, when the features are computed for the whole days at
    once and then one snapshot at a time (in stream order), then every value is bit-for-bit the same."""
    rows = market[market["date_id"].isin([2, 3])].reset_index(drop=True)
    stats = learn_stats(market)
    whole = day_features(rows, feature_set, stats).to_numpy()
    featurizer = SnapshotFeaturizer(feature_set, stats)
    streamed = np.full_like(whole, np.nan)
    for _, snapshot in rows.groupby(["date_id", "seconds_in_bucket"], sort=True):
        streamed[snapshot.index.to_numpy()] = featurizer.add_matrix(snapshot)
    assert _same(whole, streamed).all()


def test_rows_in_any_order_give_each_row_its_own_features(market: pd.DataFrame) -> None:
    """Given a day's rows shuffled, when the features are computed, then each row gets what it gets in order."""
    rows = market[market["date_id"] == 1].reset_index(drop=True)
    shuffled = rows.sample(frac=1.0, random_state=3)
    expected = day_features(rows, "full").loc[shuffled.index].to_numpy()
    assert _same(day_features(shuffled, "full").to_numpy(), expected).all()


def test_changing_a_later_snapshot_changes_no_earlier_feature(market: pd.DataFrame) -> None:
    """Given a day, when every value of its snapshots from second 300 on is changed, then the features of the
    rows before second 300 are unchanged (no look-ahead), and those from 300 on do change."""
    rows = market[market["date_id"] == 4].reset_index(drop=True)
    changed = rows.copy()
    later = changed["seconds_in_bucket"] >= 300
    for column in ("wap", "bid_price", "ask_price", "reference_price", "matched_size", "imbalance_size"):
        changed.loc[later, column] = changed.loc[later, column] * 1.01
    before, after = day_features(rows, "full").to_numpy(), day_features(changed, "full").to_numpy()
    early = (~later).to_numpy()
    assert _same(before[early], after[early]).all()
    assert not _same(before[~early], after[~early]).all()


def test_a_snapshot_missing_a_stock_leaves_the_others_identical(market: pd.DataFrame) -> None:
    """Given a day whose stock 5 misses second 100, when streamed, then the values still match the whole day."""
    rows = market[market["date_id"] == 2]
    rows = rows[~((rows["stock_id"] == 5) & (rows["seconds_in_bucket"] == 100))].reset_index(drop=True)
    whole = day_features(rows, "full").to_numpy()
    featurizer = SnapshotFeaturizer("full")
    streamed = np.concatenate([featurizer.add_matrix(s) for _, s in rows.groupby("seconds_in_bucket")])
    assert _same(whole, streamed).all()


def test_seed_set_is_exactly_the_seed_projects_29_columns() -> None:
    """Given the `seed` set, then it has the 12 raw columns, imb_s1, imb_s2 and the 15 price differences."""
    names = feature_names("seed")
    assert len(names) == 29 == len(set(names))
    assert names[:12] == [
        "seconds_in_bucket", "imbalance_buy_sell_flag", "imbalance_size", "matched_size", "bid_size",
        "ask_size", "reference_price", "far_price", "near_price", "ask_price", "bid_price", "wap",
    ]  # fmt: skip
    assert names[12:14] == ["imb_s1", "imb_s2"]
    assert all("_minus_" in name for name in names[14:]) and len(names[14:]) == 15


def test_seed_imbalance_features_follow_their_formulas(one_day: pd.DataFrame) -> None:
    """Given a day, then imb_s1 = (bid-ask)/(bid+ask), imb_s2 = (imb-matched)/(matched+imb), and the price
    differences are differences."""
    features = day_features(one_day, "seed")
    bid, ask = one_day["bid_size"], one_day["ask_size"]
    imb, matched = one_day["imbalance_size"], one_day["matched_size"]
    np.testing.assert_allclose(features["imb_s1"], (bid - ask) / (bid + ask), rtol=1e-6)
    np.testing.assert_allclose(features["imb_s2"], (imb - matched) / (matched + imb), rtol=1e-6)
    np.testing.assert_allclose(
        features["bid_price_minus_wap"], one_day["bid_price"] - one_day["wap"], atol=1e-7
    )


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_no_feature_is_an_id_or_the_target(feature_set: str) -> None:
    """Given any feature set, then row_id, time_id, date_id and target are not among its columns."""
    assert not {"row_id", "time_id", "date_id", "target"} & set(feature_names(feature_set))


def test_features_never_read_the_target(one_day: pd.DataFrame) -> None:
    """Given a day with its targets, when the targets are scrambled, then the features do not change."""
    scrambled = one_day.assign(target=np.random.default_rng(1).normal(size=len(one_day)))
    assert _same(day_features(one_day, "full").to_numpy(), day_features(scrambled, "full").to_numpy()).all()


def test_an_unknown_feature_set_is_refused(one_day: pd.DataFrame) -> None:
    """Given a feature set name that does not exist, then UnknownFeatureSet names the known ones."""
    with pytest.raises(UnknownFeatureSet, match="full"):
        day_features(one_day, "fancy")


def test_days_computed_in_blocks_give_the_same_features_as_each_day_alone(
    market: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given 5 days computed 2 days per block, then each row's features equal those of its day computed alone."""
    import closecast_ml.features as features

    rows = market[market["date_id"] <= 4].reset_index(drop=True)
    monkeypatch.setattr(features, "BLOCK_DAYS", 2)
    together = day_features(rows, "full").to_numpy()
    alone = np.concatenate([day_features(day, "full").to_numpy() for _, day in rows.groupby("date_id")])
    assert _same(together, alone).all()


def test_days_in_blocks_from_shuffled_rows_give_each_row_its_own_features(
    market: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given 5 days' rows shuffled across days and computed 2 days per block, then each row's features equal
    those it gets from the rows in date order (the gathered path gives what the in-place path gives)."""
    import closecast_ml.features as features

    rows = market[market["date_id"] <= 4].reset_index(drop=True)
    monkeypatch.setattr(features, "BLOCK_DAYS", 2)
    shuffled = rows.sample(frac=1.0, random_state=5)
    expected = day_features(rows, "full").loc[shuffled.index].to_numpy()
    assert _same(day_features(shuffled, "full").to_numpy(), expected).all()


def _last_second_betas(params: MarketParams, date_ids: np.ndarray) -> pd.DataFrame:
    from closecast_tools.market.generate import simulate_frame

    frame, _ = simulate_frame(5, date_ids, 200, params)
    frame = frame.reset_index(drop=True)
    stats = learn_stats(frame)
    names = [f"day_beta_{name}" for name in DAY_FIT_SIGNALS]
    last = frame["seconds_in_bucket"] == 540
    values = day_features(frame, "full", stats).loc[last, names]
    return values.groupby(frame.loc[last, "date_id"]).first()


def test_the_day_fit_measures_each_days_own_strengths() -> None:
    """Given the same four days (months apart) simulated with a weak and a strong book pressure (c_b 0.1 vs
    0.6), and again with a weak and a strong auction imbalance (c_z 0.1 vs 0.5), when the day fit is read at each
    day's last second, then the book estimate rises on every day in proportion to that day's rise of c_b, and
    the imbalance estimate rises on every day while the book estimate stays where it was."""
    days = np.array([0, 60, 120, 180])
    weak_book, strong_book = MarketParams(c_b=0.1), MarketParams(c_b=0.6)
    rise = (
        regimes_for(5, days, strong_book).strengths["c_b"] - regimes_for(5, days, weak_book).strengths["c_b"]
    )
    measured = (
        _last_second_betas(strong_book, days)["day_beta_book"]
        - _last_second_betas(weak_book, days)["day_beta_book"]
    ).to_numpy()
    assert ((measured / rise > 0.4) & (measured / rise < 1.1)).all()

    weak, strong = (
        _last_second_betas(MarketParams(c_z=0.1), days),
        _last_second_betas(MarketParams(c_z=0.5), days),
    )
    assert (strong["day_beta_imb"] - weak["day_beta_imb"] > 0.3).all()
    assert (strong["day_beta_book"] - weak["day_beta_book"]).abs().max() < 0.05


def test_each_day_fit_waits_for_its_first_moves_to_come_true(market: pd.DataFrame) -> None:
    """Given a day of 40 stocks, when its features are computed, then each horizon's day fit is unknown (NaN)
    until the first of its moves has come true (second 60 for the target's 60 s, 30 for 30 s, 10 for 10 s) and
    known for every stock once 100 moves have (within four snapshots)."""
    rows = market[market["date_id"] == 3].reset_index(drop=True)
    features = day_features(rows, "full", learn_stats(market))
    seconds = rows["seconds_in_bucket"].to_numpy()
    for horizon, suffix in DAY_FIT_HORIZONS:
        names = [f"day_beta{suffix}_{signal}" for signal in DAY_FIT_SIGNALS] + [f"day_fit{suffix}"]
        names += [f"day_fit_{signal}" for signal in DAY_FIT_SIGNALS] if not suffix else []
        assert set(names) <= set(DAY_FIT_FEATURES)
        values = features[names]
        assert values[seconds <= 10 * horizon].isna().all().all()
        assert values[seconds >= 10 * horizon + 40].notna().all().all()


def test_a_market_of_30_stocks_streams_the_same_bits_as_its_whole_days() -> None:
    """Given 10 days of 30 stocks (not a multiple of 8: numpy's pairwise sums would group 30 terms differently
    from 200), when streamed snapshot by snapshot with the default featurizer (all 200 indexed stocks) and
    computed whole-day, then every value is bit-for-bit the same."""
    from closecast_tools.market.generate import generate_frame

    rows = generate_frame(10, seed=2, n_stocks=30).reset_index(drop=True)
    stats = learn_stats(rows)
    whole = day_features(rows, "full", stats).to_numpy()
    featurizer = SnapshotFeaturizer("full", stats)
    streamed = np.full_like(whole, np.nan)
    for _, snapshot in rows.groupby(["date_id", "seconds_in_bucket"], sort=True):
        streamed[snapshot.index.to_numpy()] = featurizer.add_matrix(snapshot)
    assert _same(whole, streamed).all()


def test_the_clearing_gap_filter_tracks_the_hidden_clearing_price() -> None:
    """Given 10 days of 200 stocks whose hidden clearing gap (clearing price minus mid) the simulator keeps, when
    the features are computed, then where the reference price is not pinned at the bid or the ask the estimate
    is the reference's own gap with no uncertainty; pinned at the ask it lies above the ask (at the bid, below
    the bid) with some; and over all rows it follows the hidden gap more closely than the reference's gap does."""
    from closecast_tools.market.simulate import simulate_block

    date_ids = np.arange(40, 50)
    block = simulate_block(4, date_ids)
    present = np.broadcast_to(block.present[:, None, :], (10, 55, 200))
    day, step, stock = np.nonzero(present)
    cube = {
        "bid_price": block.bid, "ask_price": block.ask, "wap": block.wap, "reference_price": block.reference,
        "far_price": block.far, "near_price": block.near, "matched_size": block.matched,
        "imbalance_size": block.imbalance, "imbalance_buy_sell_flag": block.flag,
        "bid_size": block.bid_size, "ask_size": block.ask_size,
    }  # fmt: skip
    rows = pd.DataFrame({name: values[day, step, stock] for name, values in cube.items()})
    rows["date_id"], rows["seconds_in_bucket"], rows["stock_id"] = date_ids[day], step * 10, stock
    rows["target"] = block.target[day, step, stock]
    features = day_features(rows, "full", learn_stats(rows))
    estimate = features["clearing_gap"].to_numpy()
    sd = features["clearing_gap_sd"].to_numpy()
    mid = (rows["bid_price"] + rows["ask_price"]).to_numpy() / 2.0
    ref_gap = (rows["reference_price"].to_numpy() / mid - 1.0) * 1e4
    hidden = block.internals["cubes"]["gap"][day, step, stock] / mid * 1e4
    at_ask = (rows["reference_price"] == rows["ask_price"]).to_numpy()
    at_bid = (rows["reference_price"] == rows["bid_price"]).to_numpy()
    free = ~at_ask & ~at_bid
    assert 0.2 < free.mean() < 0.6 and at_ask.any() and at_bid.any()
    assert np.allclose(estimate[free], ref_gap[free], rtol=0, atol=1e-4) and (sd[free] == 0).all()
    assert (estimate[at_ask] > ref_gap[at_ask]).all() and (estimate[at_bid] < ref_gap[at_bid]).all()
    assert (sd[~free] > 0).all()
    filtered = np.corrcoef(estimate, hidden)[0, 1]
    raw = np.corrcoef(ref_gap, hidden)[0, 1]
    assert filtered > raw + 0.15, (filtered, raw)


def test_the_imbalance_unit_measures_each_stocks_response_better_than_its_volatility() -> None:
    """Given 60 days of 200 stocks, whose prices answer the auction imbalance in units of each stock's base
    volatility (the simulator's own), when the per-stock statistics are learnt, then the imbalance unit follows
    that base volatility more closely than the volatility measured from the stock's mid moves, which also carries
    the stock's drifting volatility of the days seen."""
    from closecast_tools.market.generate import simulate_frame
    from closecast_tools.market.regimes import stock_constants

    frame, _ = simulate_frame(6, np.arange(60), 200, MarketParams())
    stats = learn_stats(frame)
    base = np.log(stock_constants(6, MarketParams()).vol)
    unit = np.log(np.array(stats["stock_imb_unit"], dtype=np.float64))
    vol = np.log(np.array(stats["stock_vol"], dtype=np.float64))
    assert np.corrcoef(unit, base)[0, 1] > np.corrcoef(vol, base)[0, 1] + 0.01


def test_a_late_snapshot_is_taken_into_the_day_from_its_second_on(market: pd.DataFrame) -> None:
    """Given a day streamed without its snapshot at second 100, when that snapshot arrives after the day's last
    and the snapshots from 110 on are sent again, then those get the whole day's features bit for bit (the
    streamed state, the clearing-gap filter's included, is recomputed from the late second on)."""
    rows = market[market["date_id"] == 5].reset_index(drop=True)
    stats = learn_stats(market)
    whole = day_features(rows, "full", stats).to_numpy()
    featurizer = SnapshotFeaturizer("full", stats)
    snapshots = dict(list(rows.groupby("seconds_in_bucket", sort=True)))
    for second, snapshot in snapshots.items():
        if second != 100:
            featurizer.add_matrix(snapshot)
    featurizer.add_matrix(snapshots[100])
    for second, snapshot in snapshots.items():
        if second > 100:
            index = snapshot.index.to_numpy()
            assert _same(featurizer.add_matrix(snapshot), whole[index]).all(), second


def test_the_typical_imbalance_of_each_second_is_learnt_with_the_stock_statistics(
    market: pd.DataFrame,
) -> None:
    """Given 8 days of 40 stocks, when the statistics are learnt, then they hold the mean |imbalance / matched|
    of every second of the auction over all the rows of that second (55 values), which the day fit divides the
    imbalance by; the synthetic auction's imbalance shrinks against the matched size as the close nears, and so
    does the profile."""
    stats = learn_stats(market)
    profile = np.array(stats["imbalance_by_second"], dtype=np.float64)
    assert profile.shape == (55,) and np.isfinite(profile).all()
    size = (market["imbalance_size"] / market["matched_size"]).abs()
    for second in (0, 270, 540):
        assert profile[second // 10] == pytest.approx(
            size[market["seconds_in_bucket"] == second].mean(), rel=1e-12
        )
    assert profile[:6].mean() > 2.0 * profile[-6:].mean()


def test_each_kind_of_reference_moves_the_clearing_gap_as_the_filter_says() -> None:
    """Given five stocks with a book of 2 bps either side of the mid and a volatility of 3 bps, whose reference at
    the first second is pinned at the ask, pinned at the bid, inside the book, equal to a locked book's bid and
    ask, and (fifth) inside the book, when the filter runs three seconds (the fifth stock's second row has no
    bid, its third a locked book; the fourth's second is pinned at the ask), then: the pinned rows hold the mean and sd of the prior truncated at
    the pin; the inside row holds the reference's gap with sd 0; the locked book and the row without a bid say
    nothing: the filter only decays the estimate and widens its sd."""
    from scipy.stats import truncnorm

    half, vol = 2e-4, 3e-4
    bid = np.full((1, 3, 5), 1.0 - half)
    ask = np.full((1, 3, 5), 1.0 + half)
    reference = np.full((1, 3, 5), 1.0 + 0.5e-4)  # inside the book unless set below
    reference[0, 0, :2] = [1.0 + half, 1.0 - half]  # pinned at the ask, at the bid
    bid[0, 0, 3] = ask[0, 0, 3] = reference[0, 0, 3] = 1.0  # a locked book
    reference[0, 1, 3] = ask[0, 1, 3]
    bid[0, 1, 4] = np.nan
    bid[0, 2, 4] = ask[0, 2, 4] = reference[0, 2, 4] = 1.0  # then a locked book, which says nothing either
    cube = {"bid_price": bid, "ask_price": ask, "reference_price": reference}
    mid = (bid + ask) / 2.0
    means, sds = _clearing_gap(cube, mid, np.full(5, vol))

    prior = GAP_SD_IN_VOL * vol * 1e4  # bps
    above = truncnorm(half * 1e4 / prior, np.inf, loc=0.0, scale=prior)
    below = truncnorm(-np.inf, -half * 1e4 / prior, loc=0.0, scale=prior)
    assert means[0, 0, 0] == pytest.approx(above.mean(), rel=1e-9) and sds[0, 0, 0] == pytest.approx(
        above.std()
    )
    assert means[0, 0, 1] == pytest.approx(below.mean(), rel=1e-9) and sds[0, 0, 1] == pytest.approx(
        below.std()
    )
    assert means[0, 0, 2] == pytest.approx(0.5) and sds[0, 0, 2] == 0.0
    assert means[0, 0, 3] == 0.0 and sds[0, 0, 3] == pytest.approx(prior)  # the locked book: the prior
    # the second second: the row without a bid is missing (NaN), and the filter only advanced under it
    assert np.isnan(means[0, 1, 4]) and means[0, 2, 4] == pytest.approx(0.5 * GAP_PERSISTENCE**2)
    shock = (1.0 - GAP_PERSISTENCE**2) * prior**2
    assert sds[0, 2, 4] == pytest.approx(np.sqrt(GAP_PERSISTENCE**2 * shock + shock))
    assert means[0, 1, 3] > half * 1e4  # after the locked book, a pin at the ask still says "beyond the ask"


def test_the_day_fit_measures_the_imbalance_in_units_of_the_learnt_profile(market: pd.DataFrame) -> None:
    """Given a day and the statistics, when the day fit is computed again with the learnt typical imbalance of
    every second doubled, then the imbalance and order-flow signals halve, so their estimated strengths double
    while the other estimates and each row's fitted move stay the same (the ridge is scale-free)."""
    rows = market[market["date_id"] == 6].reset_index(drop=True)
    stats = learn_stats(market)
    doubled = {**stats, "imbalance_by_second": [2.0 * v for v in stats["imbalance_by_second"]]}
    names = ["day_beta_imb", "day_beta_flow", "day_beta_book", "day_beta_gap", "day_fit"]
    base = day_features(rows, "full", stats)[names].to_numpy(dtype=np.float64)
    other = day_features(rows, "full", doubled)[names].to_numpy(dtype=np.float64)
    known = np.isfinite(base).all(axis=1)
    assert known.sum() > 1000
    factor = np.array([2.0, 2.0, 1.0, 1.0, 1.0])
    assert np.allclose(other[known], base[known] * factor, rtol=1e-3, atol=1e-6)
    assert not np.allclose(other[known, 0], base[known, 0], rtol=0.1)
