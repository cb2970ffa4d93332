"""Features: one pure function of a day's rows up to each second (no look-ahead).

Every feature of a row (stock i, second t, day d) is computed from rows of day d at seconds <= t only: the row
itself, the same stock's earlier snapshots (lags of 1..6 steps of 10 s, and decaying sums over the day), the
cross-section of all stocks at second t, and the day's own fit (every stock's snapshots up to t). So the same numbers come out whether a whole day is computed at once (`day_features`) or one
200-stock snapshot at a time as the stream delivers it (`SnapshotFeaturizer`): both paths scatter rows into
(time, stock) arrays and run the same vectorised code, `_compute`, on them; the whole-day path on all of a
day's seconds at once, the snapshot path on one second with the day's earlier seconds as its lags.

Sets (named and versioned; a model stores its set's name, version and column list):

* `seed`: exactly the seed project's 29 columns: 12 raw columns, `imb_s1`, `imb_s2` and the 15 pairwise
  differences of the six prices.
* `full`: the seed's 29, plus imbalance ratios over size pairs and price/size triplets, the book's mid, spread
  and gaps, changes over the last 1-6 snapshots of the same stock and day, deviations from the index-weighted
  cross-section at the same second, time groups, and per-stock statistics learned at training time
  (`learn_stats`, stored with the model) with signals scaled by them; the day's own fit (version 3): the
  strengths of five signals estimated that day from the targets already come true, and each row's signals times
  them (`_day_fit`), so that a model knows what drives today's market as well as what drove the days it learnt;
  and (version 4) the clearing price tracked through the reference price's pins to the book (`_clearing_gap`),
  the stocks' volatility from mid-price moves, and each stock's own unit of response to its imbalance.

Never `row_id`, `time_id`, `date_id` or `target`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from closecast.market.schema import LAST_SECOND, SECONDS_STEP, SNAPSHOTS_PER_DAY
from closecast_ml.targets import BPS, HORIZON_STEPS, _weights_array

RAW_COLUMNS: tuple[str, ...] = (
    "seconds_in_bucket",
    "imbalance_buy_sell_flag",
    "imbalance_size",
    "matched_size",
    "bid_size",
    "ask_size",
    "reference_price",
    "far_price",
    "near_price",
    "ask_price",
    "bid_price",
    "wap",
)
PRICES: tuple[str, ...] = ("reference_price", "far_price", "near_price", "ask_price", "bid_price", "wap")
PRICE_PAIRS: tuple[tuple[str, str], ...] = tuple(combinations(PRICES, 2))
SIZE_PAIRS: tuple[tuple[str, str], ...] = (
    ("imbalance_size", "bid_size"),
    ("imbalance_size", "ask_size"),
    ("matched_size", "bid_size"),
    ("matched_size", "ask_size"),
)
PRICE_TRIPLETS: tuple[tuple[str, str, str], ...] = (
    ("ask_price", "bid_price", "wap"),
    ("ask_price", "bid_price", "reference_price"),
    ("reference_price", "near_price", "wap"),
    ("reference_price", "far_price", "near_price"),
)
SIZE_TRIPLETS: tuple[tuple[str, str, str], ...] = (
    ("imbalance_size", "bid_size", "ask_size"),
    ("matched_size", "bid_size", "ask_size"),
)
WAP_LAGS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
OTHER_LAGS: tuple[int, ...] = (1, 3, 6)
MAX_LAG = 6
# the decaying path features: sums over the last PATH_STEPS snapshots, each weighted PATH_DECAY ** age
# (a half-life of about 4 snapshots, 40 s): order flow (imbalance changes) and the mid's recent move; and the
# mid's volatility over the day so far
PATH_STEPS = 12
PATH_DECAY = 0.84
PATH_FEATURES: tuple[str, ...] = (
    "imb_rel",
    "imb_flow",
    "imb_flow_x_vol",
    "mid_move",
    "mid_move_xs_dev",
    "mid_vol",
    "mid_vol_xs",
)
# columns whose earlier snapshots the features read
LAGGED_COLUMNS: tuple[str, ...] = ("wap", "reference_price", "matched_size", "bid_size", "ask_size", "ask_price",
                                   "bid_price", "imbalance_size", "imbalance_buy_sell_flag")  # fmt: skip
STAT_NAMES: tuple[str, ...] = (
    "stock_vol",
    "stock_target_std",
    "stock_spread",
    "stock_matched",
    "stock_imb_unit",
)
# the day's own fit: the signals whose strengths the market changes from day to day (book pressure, auction
# imbalance, order flow, the stock's move against the index, the clearing price's gap to the mid), regressed on
# the targets that have already come true that day (a snapshot's target is known 6 snapshots later)
DAY_FIT_SIGNALS: tuple[str, ...] = ("book", "imb", "flow", "move", "gap")
# the horizons (in snapshots) of the moves regressed, and the suffix of their feature names: the target's own (60 s),
# and shorter moves, which come true sooner (a 10 s move is known 10 s later), so they inform the first minutes
DAY_FIT_HORIZONS: tuple[tuple[int, str], ...] = ((6, ""), (3, "_h3"), (1, "_h1"))
DAY_FIT_FEATURES: tuple[str, ...] = (
    "clearing_gap",
    "clearing_gap_sd",
    *(f"day_beta_{name}" for name in DAY_FIT_SIGNALS),
    *(f"day_fit_{name}" for name in DAY_FIT_SIGNALS),
    "day_fit",
    *(
        name
        for _, suffix in DAY_FIT_HORIZONS[1:]
        for name in (*(f"day_beta{suffix}_{signal}" for signal in DAY_FIT_SIGNALS), f"day_fit{suffix}")
    ),
)
# the clearing gap: the auction's clearing price (what the reference price is, held inside the book) minus the mid,
# tracked per stock as a persistent (AR(1)) quantity: its persistence per snapshot, and its typical size in units
# of the stock's volatility (the estimates change little with either: 0.8-0.9 and 1.2-1.8 score alike)
GAP_PERSISTENCE = 0.85
GAP_SD_IN_VOL = 1.5
# a stock's measured response to its imbalance counts only over this many training rows (10 days of snapshots)
UNIT_MIN_ROWS = 550
DAY_FIT_PRIOR_ROWS = 200.0  # the ridge: as many rows again of "no effect" (one snapshot's worth)
DAY_FIT_MIN_ROWS = 100  # fewer moves come true than this: no estimate (NaN)
CROSS_SECTION: tuple[str, ...] = (
    "wap_ret_1",
    "wap_ret_3",
    "wap_ret_6",
    "signed_imb",
    "ref_gap",
    "wap_gap",
    "imb_s1",
)


def _diff_name(a: str, b: str) -> str:
    return f"{a}_minus_{b}"


SEED_FEATURES: tuple[str, ...] = (
    *RAW_COLUMNS,
    "imb_s1",
    "imb_s2",
    *(_diff_name(a, b) for a, b in PRICE_PAIRS),
)
FULL_FEATURES: tuple[str, ...] = (
    *SEED_FEATURES,
    *(f"{a}_{b}_imb" for a, b in SIZE_PAIRS),
    *(f"{a}_{b}_{c}_imb2" for a, b, c in (*PRICE_TRIPLETS, *SIZE_TRIPLETS)),
    "signed_imb",
    "spread",
    "ref_gap",
    "wap_gap",
    "near_gap",
    "book_over_matched",
    *(f"wap_ret_{k}" for k in WAP_LAGS),
    *(f"ref_ret_{k}" for k in OTHER_LAGS),
    *(f"signed_imb_chg_{k}" for k in OTHER_LAGS),
    *(f"matched_chg_{k}" for k in (1, 3)),
    "imb_s1_chg_1",
    "ref_gap_chg_1",
    *(f"{name}_xs_dev" for name in CROSS_SECTION),
    "xs_wap_ret_6",
    "time_group",
    "auction_phase",
    *STAT_NAMES,
    "signed_imb_x_vol",
    "ref_gap_over_vol",
    "wap_gap_over_vol",
    "matched_over_stock",
    *PATH_FEATURES,
    *DAY_FIT_FEATURES,
)
FEATURE_SETS: dict[str, tuple[str, ...]] = {"seed": SEED_FEATURES, "full": FULL_FEATURES}
FEATURE_SET_VERSIONS: dict[str, int] = {"seed": 1, "full": 4}
FORBIDDEN = frozenset({"row_id", "time_id", "date_id", "target"})
assert not FORBIDDEN & {*SEED_FEATURES, *FULL_FEATURES}


class UnknownFeatureSet(ValueError):
    """A feature set name that is not in `FEATURE_SETS`."""


def feature_names(feature_set: str) -> list[str]:
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise UnknownFeatureSet(
            f"unknown feature set {feature_set!r}; known: {', '.join(sorted(FEATURE_SETS))}"
        ) from None


# --- per-stock statistics ------------------------------------------------------------------------------------


def learn_stats(rows: pd.DataFrame) -> dict[str, list[float | None]]:
    """Per-stock statistics of the training rows, indexed by stock_id (None where a stock has none):
    volatility of 10-second mid-price moves (the WAP's would add the book's noise), standard deviation of the
    target, median relative spread, median matched size, and the unit of the stock's response to its auction
    imbalance (`_imbalance_unit`); and, not per stock, `imbalance_by_second`: the mean |imbalance / matched| of
    each second of the auction over all rows (55 values). JSON-ready: stored in the model's metadata and read back by `stats_arrays`."""
    if rows.empty:
        return {**{name: [] for name in STAT_NAMES}, "imbalance_by_second": []}
    stock = rows["stock_id"].to_numpy(dtype=np.int64)
    n = int(stock.max()) + 1
    frame = pd.DataFrame(
        {
            "stock_id": stock,
            "date_id": rows["date_id"].to_numpy(dtype=np.int64),
            "seconds": rows["seconds_in_bucket"].to_numpy(dtype=np.int64),
            "mid": ((rows["ask_price"] + rows["bid_price"]) * 0.5).to_numpy(dtype=np.float64),
            "target": rows["target"].to_numpy(dtype=np.float64) if "target" in rows else np.nan,
            "spread": (rows["ask_price"] - rows["bid_price"]).to_numpy(dtype=np.float64)
            / ((rows["ask_price"] + rows["bid_price"]).to_numpy(dtype=np.float64) / 2.0),
            "matched": rows["matched_size"].to_numpy(dtype=np.float64),
            "imb": _ratio(
                (rows["imbalance_buy_sell_flag"] * rows["imbalance_size"]).to_numpy(dtype=np.float64),
                rows["matched_size"].to_numpy(dtype=np.float64),
            ),
        }
    ).sort_values(["stock_id", "date_id", "seconds"], kind="stable")
    same = (
        (frame["stock_id"].diff() == 0)
        & (frame["date_id"].diff() == 0)
        & (frame["seconds"].diff() == SECONDS_STEP)  # 10-second moves only: sampled rows leave gaps
    )
    frame["ret"] = np.where(same, frame["mid"] / frame["mid"].shift(1) - 1.0, np.nan)
    # the imbalance in units of the typical |imbalance| of all stocks at that second, and the sums of products
    # that make each stock's least-squares slope of its targets on it
    typical = frame["imb"].abs().groupby([frame["date_id"], frame["seconds"]]).transform("mean")
    x = _ratio(frame["imb"].to_numpy(), typical.to_numpy())
    y = frame["target"].to_numpy()
    both = np.isfinite(x) & np.isfinite(y)
    frame["xy"] = np.where(both, x * y, 0.0)
    frame["xx"] = np.where(both, x * x, 0.0)
    frame["n"] = both
    grouped = frame.groupby("stock_id")
    table = pd.DataFrame(
        {
            "stock_vol": grouped["ret"].std(),
            "stock_target_std": grouped["target"].std(),
            "stock_spread": grouped["spread"].median(),
            "stock_matched": grouped["matched"].median(),
        }
    ).reindex(pd.RangeIndex(n))
    sums = grouped[["xy", "xx", "n"]].sum().reindex(pd.RangeIndex(n))
    slope = _ratio(sums["xy"].to_numpy(), sums["xx"].to_numpy())
    slope[~(sums["n"].to_numpy(dtype=np.float64) >= UNIT_MIN_ROWS)] = (
        np.nan
    )  # too few rows: the volatility alone
    table["stock_imb_unit"] = _imbalance_unit(table["stock_vol"].to_numpy(dtype=np.float64), slope)
    out = {
        name: [None if not np.isfinite(v) else float(v) for v in table[name].to_numpy(dtype=np.float64)]
        for name in STAT_NAMES
    }
    profile = frame["imb"].abs().groupby(frame["seconds"] // SECONDS_STEP).mean()
    profile = profile.reindex(pd.RangeIndex(SNAPSHOTS_PER_DAY))
    out["imbalance_by_second"] = [
        None if not np.isfinite(v) else float(v) for v in profile.to_numpy(dtype=np.float64)
    ]
    return out


def _imbalance_unit(vol: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Each stock's unit of response to its auction imbalance, in volatility units: the mean of two estimates
    of it, the stock's volatility and its measured slope (targets on the imbalance) scaled to volatility units by
    the least-squares ratio over the stocks that have both; the volatility alone where the slope is unknown or
    not positive. How hard a stock's price answers its imbalance is what the day fit's imbalance and order-flow
    signals need, and the two estimates err independently (volatility also drifts from day to day)."""
    usable = np.isfinite(vol) & np.isfinite(slope) & (slope > 0)
    if usable.sum() < 2:
        return vol.copy()
    ratio = float((slope[usable] * vol[usable]).sum() / (vol[usable] ** 2).sum())
    return np.where(usable, 0.5 * (slope / ratio + vol), vol)


def stats_arrays(stats: Mapping[str, Sequence[float | None]] | None, n_stocks: int) -> dict[str, np.ndarray]:
    """`learn_stats` output as float64 arrays of length `n_stocks` (NaN where unknown)."""
    out: dict[str, np.ndarray] = {}
    for name in STAT_NAMES:
        values = np.full(n_stocks, np.nan)
        known = list((stats or {}).get(name, []))[:n_stocks]
        if known:
            values[: len(known)] = np.array([np.nan if v is None else v for v in known], dtype=np.float64)
        out[name] = values
    profile = np.full(SNAPSHOTS_PER_DAY, np.nan)
    known = list((stats or {}).get("imbalance_by_second", []))[:SNAPSHOTS_PER_DAY]
    if known:
        profile[: len(known)] = np.array([np.nan if v is None else v for v in known], dtype=np.float64)
    out["imbalance_by_second"] = profile
    return out


def _index_weights(n_stocks: int) -> np.ndarray:
    """The index weight of each stock id below n_stocks; stocks beyond the table get the mean weight."""
    table = _weights_array()
    weights = np.full(n_stocks, 1.0 / len(table))
    weights[: min(n_stocks, len(table))] = table[:n_stocks]
    return weights


# --- the one computation ----------------------------------------------------------------------------------

Lag = Callable[[str, int], np.ndarray]


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    out[~np.isfinite(out)] = np.nan
    return out


def _imb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _ratio(a - b, a + b)


def _imb2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(max - mid) / (mid - min) of three arrays: where the middle one sits between the other two."""
    high = np.fmax(np.fmax(a, b), c)
    low = np.fmin(np.fmin(a, b), c)
    middle = a + b + c - high - low
    return _ratio(high - middle, middle - low)


def _xs_mean(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index-weighted mean over the stocks (last axis) that have a value, per row: (n, S) -> (n, 1).
    Elementwise products and a per-row sum, so one row gives the same bits alone as inside a larger array."""
    present = ~np.isnan(x)
    total = np.where(present, x * weights, 0.0).sum(axis=-1, keepdims=True)
    weight = np.where(present, weights, 0.0).sum(axis=-1, keepdims=True)
    return _ratio(total, weight)


def _shifted(cube: np.ndarray, k: int) -> np.ndarray:
    """A (D, T, S) cube moved k steps later along its time axis within each day (k < 0: earlier); NaN where the
    step falls outside the day."""
    out = np.full(cube.shape, np.nan)
    if k >= 0:
        out[:, k:, :] = cube[:, : cube.shape[1] - k, :]
    else:
        out[:, :k, :] = cube[:, -k:, :]
    return out


def _decaying_sum(steps: np.ndarray, current: np.ndarray) -> np.ndarray:
    """sum over a <= t of PATH_DECAY ** (t - a) * steps[a] along the time axis of (D, T, S) cubes (a missing
    step counts 0), NaN where `current` is: a running sum in time order, so a day's first T seconds give the same
    bits whatever follows them."""
    powers = PATH_DECAY ** np.arange(steps.shape[1], dtype=np.float64)[None, :, None]
    total = np.cumsum(np.where(np.isfinite(steps), steps, 0.0) / powers, axis=1) * powers
    total[np.isnan(current)] = np.nan
    return total


def _day_fit(
    cube: Mapping[str, np.ndarray],
    stats: Mapping[str, np.ndarray],
    weights: np.ndarray,
    last_only: bool = False,
    track: GapTrack | None = None,
) -> dict[str, np.ndarray]:
    """The day-fit features of every (day, second, stock) of (D, T, S) cubes of the raw columns (T <= 55).

    What moves prices comes from a few signals whose strengths change from day to day: the book pressure (wap
    over mid), the auction imbalance and its decaying order flow (in units of the typical |imbalance| at that
    second of the auction, learnt with the statistics, times the stock's imbalance unit `stock_imb_unit`), the stock's decaying move against
    the index, and the clearing price's gap to the mid (`_clearing_gap`, also the features `clearing_gap` and
    `clearing_gap_sd`). At second t every move of the same day that ended by t is known, so the
    day's strengths can be estimated as it goes: for each horizon h of `DAY_FIT_HORIZONS`, a ridge regression,
    over all stocks and the seconds up to t - 10h, of the realised index-relative h-step move of the WAP (bps,
    the target's own definition at h = 6) on the signals (bps). `day_beta{suffix}_<signal>` are the estimates
    at t (the same for every stock), `day_fit{suffix}` the row's signals times them, and at h = 6
    `day_fit_<signal>` each term (all NaN until `DAY_FIT_MIN_ROWS` moves are known). Per-row sums over the stocks
    and running sums over the seconds in order: a day gives the same bits alone, inside a block of days, or cut
    at its second t. `last_only`: the values of the cubes' last second only, (D, 1, S) (what a snapshot needs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = (cube["ask_price"] + cube["bid_price"]) * 0.5
        imb = _ratio(cube["imbalance_buy_sell_flag"] * cube["imbalance_size"], cube["matched_size"])
        # the typical |imbalance| at each second: learnt over the training days, which is steadier than one
        # day's cross-section; without it, the mean over the stocks at that second (every stock alike, steadier
        # than the mean over the index's few heavy stocks)
        profile = stats["imbalance_by_second"][: mid.shape[1]][None, :, None]
        scale = np.where(np.isfinite(profile), profile, _xs_mean(np.abs(imb), np.ones_like(weights)))
        unit = np.broadcast_to(stats["stock_imb_unit"], mid.shape)
        log_mid = np.log(mid)
        flow = _decaying_sum(_ratio(imb - _shifted(imb, 1), scale), imb)
        move = _decaying_sum(log_mid - _shifted(log_mid, 1), log_mid)
        gap, gap_sd = _clearing_gap(cube, mid, stats["stock_vol"], track)
        signals = [
            (_ratio(cube["wap"], mid) - 1.0) * BPS,
            _ratio(imb, scale) * unit * BPS,
            flow * unit * BPS,
            (move - _xs_mean(move, weights)) * BPS,
            gap,
        ]
        wap = cube["wap"]
        present = ~np.isnan(wap)
        level = _ratio(
            np.where(present, wap * weights, 0.0).sum(axis=-1), np.where(present, weights, 0.0).sum(axis=-1)
        )
    out: dict[str, np.ndarray] = {
        "clearing_gap": gap[:, -1:] if last_only else gap,
        "clearing_gap_sd": gap_sd[:, -1:] if last_only else gap_sd,
    }
    for horizon, suffix in DAY_FIT_HORIZONS:
        with np.errstate(divide="ignore", invalid="ignore"):
            level_later = np.full(level.shape, np.nan)
            level_later[:, :-horizon] = level[:, horizon:]
            realised = (_shifted(wap, -horizon) / wap - (level_later / level)[..., None]) * BPS
        beta = _ridge_fit(signals, realised, horizon, last_only)
        shown = [signal[:, -1:] for signal in signals] if last_only else signals
        shape = shown[0].shape
        fit = np.zeros(shape)
        for n, (name, signal) in enumerate(zip(DAY_FIT_SIGNALS, shown, strict=True)):
            out[f"day_beta{suffix}_{name}"] = np.broadcast_to(beta[..., n, None], shape)
            part = beta[..., n, None] * signal
            if horizon == HORIZON_STEPS:
                out[f"day_fit_{name}"] = part
            fit += part
        out[f"day_fit{suffix}"] = fit
    return out


class GapTrack:
    """The clearing-gap filter's state after each second of one day, for the snapshot path: each snapshot then
    advances the filter by one step instead of running it over the day again. `done`: how many seconds from the
    day's first hold a current state (a snapshot written at an earlier second cuts it back)."""

    def __init__(self, n_stocks: int) -> None:
        self.mean = np.full((SNAPSHOTS_PER_DAY, n_stocks), np.nan)
        self.variance = np.full((SNAPSHOTS_PER_DAY, n_stocks), np.nan)
        self.done = 0

    def forget_from(self, step: int) -> None:
        self.done = min(self.done, step)


def _clearing_gap(
    cube: Mapping[str, np.ndarray], mid: np.ndarray, stock_vol: np.ndarray, track: GapTrack | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The clearing gap's estimate and its standard deviation (bps of the mid) at each (day, second, stock) of
    (D, T, S) cubes, from the stock's reference prices up to that second.

    The reference price is the clearing price held inside the book: strictly inside it (or outside, unheld) it
    is the clearing price; pinned at the ask it says only that the clearing price is at or above the ask (at the
    bid: at or below). The gap is tracked as a persistent quantity (`GAP_PERSISTENCE` per snapshot, typical size
    `GAP_SD_IN_VOL` times the stock's volatility) with a Gaussian filter: between snapshots the estimate decays
    and its variance grows; an exact reference sets it; a pinned one keeps the filter's distribution beyond the
    pin (the truncated normal's mean and variance). A missing row, one without both sides of its book, or a
    locked book (bid == ask) only advances the filter. Elementwise over the
    stocks and in time order, so a day gives the same bits whole or cut at its second t. `track` (one day): start
    from its states, and leave the new ones in it."""
    days, steps, stocks = mid.shape
    start = min(track.done, steps) if track is not None else 0
    later = slice(start, steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        reference = (_ratio(cube["reference_price"], mid) - 1.0) * BPS
        low = (_ratio(cube["bid_price"][:, later], mid[:, later]) - 1.0) * BPS
        high = (_ratio(cube["ask_price"][:, later], mid[:, later]) - 1.0) * BPS
    at_ask = cube["reference_price"][:, later] == cube["ask_price"][:, later]
    at_bid = cube["reference_price"][:, later] == cube["bid_price"][:, later]
    # a row says something only with its reference and both sides of its book; a reference equal to both (a
    # locked book) is pinned whatever the clearing price is, so it says nothing either: such rows only advance
    seen = np.isfinite(reference[:, later]) & np.isfinite(low) & np.isfinite(high)
    above = seen & at_ask & ~at_bid
    below = seen & at_bid & ~at_ask
    exact = seen & ~at_ask & ~at_bid
    stationary = np.broadcast_to((GAP_SD_IN_VOL * stock_vol * BPS) ** 2, (days, stocks))
    shock = (1.0 - GAP_PERSISTENCE**2) * stationary
    means = np.full(mid.shape, np.nan)
    variances = np.full(mid.shape, np.nan)
    if track is not None and start:
        means[:, :start] = track.mean[None, :start]
        variances[:, :start] = track.variance[None, :start]
        mean, variance = means[:, start - 1].copy(), variances[:, start - 1].copy()
    else:
        mean, variance = np.zeros((days, stocks)), stationary.copy()
    for t in range(start, steps):
        k = t - start
        if t:
            mean = GAP_PERSISTENCE * mean
            variance = GAP_PERSISTENCE**2 * variance + shock
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            sd = np.sqrt(variance)
            # the pin's distance from the estimate in sds, beyond the ask (a) and the bid (b), and the inverse
            # Mills ratios there: how far the mean of the part beyond the pin lies from the pin
            a = (high[:, k] - mean) / sd
            mills_a = _SQRT_2_OVER_PI / special.erfcx(a * _SQRT_HALF)
            b = (mean - low[:, k]) / sd
            mills_b = _SQRT_2_OVER_PI / special.erfcx(b * _SQRT_HALF)
            mean = np.where(
                exact[:, k],
                reference[:, t],
                np.where(above[:, k], mean + sd * mills_a, np.where(below[:, k], mean - sd * mills_b, mean)),
            )
            variance = np.where(
                exact[:, k],
                0.0,
                np.where(
                    above[:, k],
                    variance * np.maximum(1.0 + a * mills_a - mills_a**2, _MIN_SHRINK),
                    np.where(
                        below[:, k],
                        variance * np.maximum(1.0 + b * mills_b - mills_b**2, _MIN_SHRINK),
                        variance,
                    ),
                ),
            )
        means[:, t] = mean
        variances[:, t] = variance
    if track is not None:
        track.mean[start:steps] = means[0, start:]
        track.variance[start:steps] = variances[0, start:]
        track.done = steps
    missing = np.isnan(reference)
    means[missing] = np.nan
    sds = np.sqrt(variances)
    sds[missing] = np.nan
    return means, sds


_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_SQRT_HALF = float(np.sqrt(0.5))
_MIN_SHRINK = 1e-6  # a truncated normal's variance, as a share of the untruncated one, never below this


def _ridge_fit(signals: list[np.ndarray], realised: np.ndarray, horizon: int, last_only: bool) -> np.ndarray:
    """(D, T, K), or (D, 1, K) with `last_only`: at each second, the ridge estimates from the rows whose
    `horizon`-step moves have come true."""
    usable = np.isfinite(realised)
    for signal in signals:
        usable &= np.isfinite(signal)
    x = [np.where(usable, signal, 0.0) for signal in signals]
    y = np.where(usable, realised, 0.0)
    k = len(x)
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    sums = np.stack(
        [(x[i] * x[j]).sum(axis=-1) for i, j in pairs]
        + [(x[i] * y).sum(axis=-1) for i in range(k)]
        + [usable.sum(axis=-1).astype(np.float64)],
        axis=-1,
    )  # (D, T, P): each second's contribution
    running = np.cumsum(sums, axis=1)
    known = np.zeros(running.shape)  # at second t: the rows of seconds <= t - horizon
    known[:, horizon:, :] = running[:, :-horizon, :]
    if last_only:
        known = known[:, -1:]
    rows = known[..., -1]
    gram = np.empty((*rows.shape, k, k))
    for n, (i, j) in enumerate(pairs):
        gram[..., i, j] = gram[..., j, i] = known[..., n]
    enough = rows >= DAY_FIT_MIN_ROWS
    with np.errstate(divide="ignore", invalid="ignore"):
        ridge = (
            np.diagonal(gram, axis1=-2, axis2=-1) * (DAY_FIT_PRIOR_ROWS / np.maximum(rows, 1.0))[..., None]
        )
    diagonal = np.arange(k)
    gram[..., diagonal, diagonal] += ridge
    solvable = enough & (np.diagonal(gram, axis1=-2, axis2=-1) > 0).all(axis=-1)
    gram[~solvable] = np.eye(k)
    rhs = known[..., len(pairs) : len(pairs) + k].copy()
    rhs[~solvable] = 0.0
    beta = np.linalg.solve(gram, rhs[..., None])[..., 0]
    beta[~solvable] = np.nan
    return beta


def _lagged(lag: Lag, k: int) -> Callable[[str], np.ndarray]:
    return lambda column: lag(column, k)


def _compute(
    col: Mapping[str, np.ndarray],
    lag: Lag,
    seconds: np.ndarray,
    stats: Mapping[str, np.ndarray],
    weights: np.ndarray,
    names: Sequence[str],
) -> dict[str, np.ndarray]:
    """The features `names` on (n, S) arrays: `col[c]` the values at each of n seconds for S stocks (NaN =
    no row), `lag(c, k)` the same stock's value k snapshots earlier (NaN before the day's start), `seconds`
    (n, 1). Every operation is elementwise or a per-row reduction over stocks: no row reads a later second."""
    out: dict[str, np.ndarray] = {}
    shape = col["wap"].shape
    for raw in RAW_COLUMNS:
        out[raw] = np.broadcast_to(seconds, shape) if raw == "seconds_in_bucket" else col[raw]
    out["imb_s1"] = _imb(col["bid_size"], col["ask_size"])
    out["imb_s2"] = _ratio(
        col["imbalance_size"] - col["matched_size"], col["matched_size"] + col["imbalance_size"]
    )
    for a, b in PRICE_PAIRS:
        out[_diff_name(a, b)] = col[a] - col[b]
    if "signed_imb" not in names:
        return out

    for a, b in SIZE_PAIRS:
        out[f"{a}_{b}_imb"] = _imb(col[a], col[b])
    for a, b, c in (*PRICE_TRIPLETS, *SIZE_TRIPLETS):
        out[f"{a}_{b}_{c}_imb2"] = _imb2(col[a], col[b], col[c])

    def signed_imb(get: Callable[[str], np.ndarray]) -> np.ndarray:
        return _ratio(get("imbalance_buy_sell_flag") * get("imbalance_size"), get("matched_size"))

    def mid_of(get: Callable[[str], np.ndarray]) -> np.ndarray:
        return (get("ask_price") + get("bid_price")) * 0.5

    def ref_gap(get: Callable[[str], np.ndarray]) -> np.ndarray:
        return _ratio(get("reference_price"), mid_of(get)) - 1.0

    now = col.__getitem__
    mid = mid_of(now)
    out["signed_imb"] = signed_imb(now)
    out["spread"] = _ratio(col["ask_price"] - col["bid_price"], mid)
    out["ref_gap"] = ref_gap(now)
    out["wap_gap"] = _ratio(col["wap"], mid) - 1.0
    out["near_gap"] = _ratio(col["near_price"], col["reference_price"]) - 1.0
    out["book_over_matched"] = _ratio(col["bid_size"] + col["ask_size"], col["matched_size"])

    for k in WAP_LAGS:
        out[f"wap_ret_{k}"] = _ratio(col["wap"], lag("wap", k)) - 1.0
    for k in OTHER_LAGS:
        out[f"ref_ret_{k}"] = _ratio(col["reference_price"], lag("reference_price", k)) - 1.0
        out[f"signed_imb_chg_{k}"] = out["signed_imb"] - signed_imb(_lagged(lag, k))
    for k in (1, 3):
        out[f"matched_chg_{k}"] = _ratio(col["matched_size"], lag("matched_size", k)) - 1.0
    out["imb_s1_chg_1"] = out["imb_s1"] - _imb(lag("bid_size", 1), lag("ask_size", 1))
    out["ref_gap_chg_1"] = out["ref_gap"] - ref_gap(_lagged(lag, 1))

    for name in CROSS_SECTION:
        mean = _xs_mean(out[name], weights)
        out[f"{name}_xs_dev"] = out[name] - mean
        if name == "wap_ret_6":
            out["xs_wap_ret_6"] = np.broadcast_to(mean, shape)

    out["time_group"] = np.broadcast_to(seconds // 60, shape).astype(np.float64)
    out["auction_phase"] = np.broadcast_to(seconds >= 300, shape).astype(np.float64)

    for name in STAT_NAMES:
        out[name] = np.broadcast_to(stats[name], shape)
    out["signed_imb_x_vol"] = out["signed_imb"] * stats["stock_vol"]
    out["ref_gap_over_vol"] = _ratio(out["ref_gap"], np.broadcast_to(stats["stock_vol"], shape))
    out["wap_gap_over_vol"] = _ratio(out["wap_gap"], np.broadcast_to(stats["stock_vol"], shape))
    out["matched_over_stock"] = _ratio(col["matched_size"], np.broadcast_to(stats["stock_matched"], shape))
    out.update(_path_features(now, lag, weights, signed_imb, mid_of))
    return out


def _path_features(
    now: Callable[[str], np.ndarray],
    lag: Lag,
    weights: np.ndarray,
    signed_imb: Callable[[Callable[[str], np.ndarray]], np.ndarray],
    mid_of: Callable[[Callable[[str], np.ndarray]], np.ndarray],
) -> dict[str, np.ndarray]:
    """Decaying sums over the stock-day's last `PATH_STEPS` snapshots (steps before the day's start count 0):
    `imb_flow` the order flow, changes of the signed imbalance each in units of the market's typical |imbalance|
    at its second (the cross-section's weighted mean |signed_imb|); `mid_move` the mid's recent log move and
    `mid_move_xs_dev` its deviation from the index-weighted cross-section; `mid_vol` the root mean square of the
    mid's 10-second log moves over the day so far and `mid_vol_xs` its index-weighted cross-sectional mean (the
    day's volatility regime); `imb_flow_x_vol` the flow times `mid_vol`; `imb_rel` the signed imbalance in the
    units of `imb_flow`."""
    getters = [now, *(_lagged(lag, k) for k in range(1, PATH_STEPS + 1))]
    imb = [signed_imb(get) for get in getters]
    scale = [_xs_mean(np.abs(x), weights) for x in imb]
    log_mid = [np.log(mid_of(get)) for get in getters]
    flow = np.zeros(imb[0].shape)
    move = np.zeros(imb[0].shape)
    square = np.zeros(imb[0].shape)
    seen = np.zeros(imb[0].shape)
    for age in range(SNAPSHOTS_PER_DAY - 1):
        if age + 1 >= len(log_mid):
            log_mid.append(np.log(mid_of(_lagged(lag, age + 1))))
        step = log_mid[age] - log_mid[age + 1]
        known = np.isfinite(step)
        step = np.where(known, step, 0.0)
        square += step * step
        seen += known
        if age < PATH_STEPS:
            decay = PATH_DECAY**age
            flow += decay * np.nan_to_num(_ratio(imb[age] - imb[age + 1], scale[age]))
            move += decay * step
    missing = np.isnan(imb[0])
    flow[missing] = np.nan
    move[np.isnan(log_mid[0])] = np.nan
    vol = np.sqrt(_ratio(square, seen))
    out = {
        "imb_rel": _ratio(imb[0], scale[0]),
        "imb_flow": flow,
        "imb_flow_x_vol": flow * vol,
        "mid_move": move,
        "mid_vol": vol,
    }
    out["mid_move_xs_dev"] = move - _xs_mean(move, weights)
    out["mid_vol_xs"] = np.broadcast_to(_xs_mean(vol, weights), vol.shape)
    return out


_INPUTS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c != "seconds_in_bucket")
_DAY_FIT_INPUTS: tuple[str, ...] = (
    "ask_price", "bid_price", "wap", "reference_price", "imbalance_buy_sell_flag", "imbalance_size", "matched_size"
)  # fmt: skip


def _matrix(
    features: dict[str, np.ndarray],
    names: Sequence[str],
    cells: tuple[np.ndarray, np.ndarray],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The features of the given (time, stock) cells of the arrays, as a float32 (rows, features) matrix
    (written into `out` when given)."""
    matrix = np.empty((len(cells[0]), len(names)), dtype=np.float32) if out is None else out
    shape = features[names[0]].shape
    flat = np.ravel_multi_index(cells, shape)  # one flat index for every column: a cheaper gather
    for j, name in enumerate(names):
        values = features[name]
        if values.shape != shape:
            values = np.broadcast_to(values, shape)
        matrix[:, j] = values.reshape(-1)[flat] if values.flags.c_contiguous else values[cells]
    return matrix


BLOCK_DAYS = 16  # days computed together: bounds the memory of the intermediate (time, stock) arrays


def day_matrix(
    rows: pd.DataFrame, feature_set: str, stats: Mapping[str, Sequence[float | None]] | None = None
) -> np.ndarray:
    """`day_features` as a float32 matrix (rows in the order of `rows`, columns `feature_names(feature_set)`).
    `rows` may hold several days; each day only sees itself. Days are computed `BLOCK_DAYS` at a time."""
    names = feature_names(feature_set)
    if rows.empty:
        return np.empty((0, len(names)), dtype=np.float32)
    day_codes, _ = pd.factorize(rows["date_id"].to_numpy(), sort=True)
    seconds = rows["seconds_in_bucket"].to_numpy(dtype=np.int64)
    steps = seconds // SECONDS_STEP
    if (seconds % SECONDS_STEP).any() or steps.min() < 0 or steps.max() > LAST_SECOND // SECONDS_STEP:
        raise ValueError("seconds_in_bucket must be multiples of 10 in 0..540")
    stocks = rows["stock_id"].to_numpy(dtype=np.int64)
    # the stock axis as wide as the snapshot path's (every indexed stock): sums over the stocks then run over the
    # same number of terms (absent ones 0) and so give the same bits whichever stocks a day has
    n_stocks = max(len(_weights_array()), int(stocks.max()) + 1)
    stat_values = stats_arrays(stats, n_stocks)
    weights = _index_weights(n_stocks)
    values = {column: rows[column].to_numpy(dtype=np.float64) for column in _INPUTS}
    n_days = int(day_codes.max()) + 1
    if n_days <= BLOCK_DAYS:
        return _block_matrix(values, day_codes, steps, stocks, n_days, n_stocks, stat_values, weights, names)
    matrix = np.empty((len(rows), len(names)), dtype=np.float32)
    block_of_row = day_codes // BLOCK_DAYS
    # rows sorted by date (the usual case): each block is a run of rows, computed in place into `matrix`, no
    # copies; otherwise each block's rows are gathered, computed, and scattered back
    order = None if (np.diff(day_codes) >= 0).all() else np.argsort(block_of_row, kind="stable")
    sorted_blocks = block_of_row if order is None else block_of_row[order]
    bounds = np.searchsorted(sorted_blocks, np.arange(int(sorted_blocks[-1]) + 2))
    for block in range(int(sorted_blocks[-1]) + 1):
        start, stop = int(bounds[block]), int(bounds[block + 1])
        if start == stop:
            continue
        part: slice | np.ndarray = slice(start, stop) if order is None else order[start:stop]
        computed = _block_matrix(
            {column: array[part] for column, array in values.items()},
            day_codes[part] - block * BLOCK_DAYS,
            steps[part],
            stocks[part],
            BLOCK_DAYS,
            n_stocks,
            stat_values,
            weights,
            names,
            out=matrix[part] if order is None else None,
        )
        if order is not None:
            matrix[part] = computed
    return matrix


def _block_matrix(
    values: Mapping[str, np.ndarray],
    day_codes: np.ndarray,
    steps: np.ndarray,
    stocks: np.ndarray,
    n_days: int,
    n_stocks: int,
    stats: Mapping[str, np.ndarray],
    weights: np.ndarray,
    names: Sequence[str],
    out: np.ndarray | None = None,
) -> np.ndarray:
    time_index = day_codes * SNAPSHOTS_PER_DAY + steps
    cube_shape = (n_days, SNAPSHOTS_PER_DAY, n_stocks)
    flat = (n_days * SNAPSHOTS_PER_DAY, n_stocks)
    columns: dict[str, np.ndarray] = {}
    for column in _INPUTS:
        cube = np.full(flat, np.nan)
        cube[time_index, stocks] = values[column]
        columns[column] = cube

    def lag(column: str, k: int) -> np.ndarray:
        cube = columns[column].reshape(cube_shape)
        shifted = np.full(cube_shape, np.nan)
        shifted[:, k:, :] = cube[:, :-k, :]
        return shifted.reshape(flat)

    seconds_column = np.tile(np.arange(SNAPSHOTS_PER_DAY, dtype=np.int64) * SECONDS_STEP, n_days)[:, None]
    features = _compute(columns, lag, seconds_column, stats, weights, names)
    if "day_fit" in names:
        day_cube = {column: columns[column].reshape(cube_shape) for column in _DAY_FIT_INPUTS}
        for name, fitted in _day_fit(day_cube, stats, weights).items():
            features[name] = fitted.reshape(flat)
    return _matrix(features, names, (time_index, stocks), out)


def day_features(
    rows: pd.DataFrame, feature_set: str, stats: Mapping[str, Sequence[float | None]] | None = None
) -> pd.DataFrame:
    """The features of every row of a day (or several days) at once: a float32 frame on `rows.index`, with the
    columns of `feature_names(feature_set)`. `stats`: the model's per-stock statistics (`learn_stats`)."""
    names = feature_names(feature_set)
    return pd.DataFrame(day_matrix(rows, feature_set, stats), index=rows.index, columns=names)


class SnapshotFeaturizer:
    """The features of one snapshot (all stocks at one second) at a time, given the day's earlier snapshots.

    `add(rows)` takes the rows of one second of one day (any stocks), remembers them and returns their features
    in row order, the same values `day_features` computes for them on the whole day. A snapshot of another
    date_id starts a new day. Vectorised over the stocks: one pass of `_compute` on a (1, stocks) slice."""

    def __init__(
        self,
        feature_set: str,
        stats: Mapping[str, Sequence[float | None]] | None = None,
        n_stocks: int = 200,
    ) -> None:
        self.feature_set = feature_set
        self.names = feature_names(feature_set)
        self._stats_source = stats
        self._date_id: int | None = None
        self._resize(n_stocks)

    def _resize(self, n_stocks: int) -> None:
        self.n_stocks = n_stocks
        self._stats = stats_arrays(self._stats_source, n_stocks)
        self._weights = _index_weights(n_stocks)
        self._gap = GapTrack(n_stocks)
        old = getattr(self, "_history", None)
        self._history = {c: np.full((SNAPSHOTS_PER_DAY, n_stocks), np.nan) for c in _INPUTS}
        if old is not None:
            for column, values in old.items():
                self._history[column][:, : values.shape[1]] = values

    def reset(self, date_id: int | None = None) -> None:
        """Forget the day's snapshots (a new day starts)."""
        self._date_id = date_id
        self._gap.done = 0
        for values in self._history.values():
            values.fill(np.nan)

    def add(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Features of one snapshot's rows (a float32 frame on `rows.index`)."""
        return pd.DataFrame(self.add_matrix(rows), index=rows.index, columns=self.names)

    def add_matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """`add` as a float32 matrix (rows in the order given)."""
        dates = rows["date_id"].to_numpy()
        seconds = rows["seconds_in_bucket"].to_numpy()
        if len(rows) == 0:
            return np.empty((0, len(self.names)), dtype=np.float32)
        if (dates != dates[0]).any() or (seconds != seconds[0]).any():
            raise ValueError("a snapshot is the rows of one date_id and one seconds_in_bucket")
        second = int(seconds[0])
        if second % SECONDS_STEP or not 0 <= second <= LAST_SECOND:
            raise ValueError("seconds_in_bucket must be a multiple of 10 in 0..540")
        if int(dates[0]) != self._date_id:
            self.reset(int(dates[0]))
        stocks = rows["stock_id"].to_numpy(dtype=np.int64)
        if int(stocks.max()) >= self.n_stocks:
            self._resize(int(stocks.max()) + 1)
        step = second // SECONDS_STEP
        self._gap.forget_from(step)
        current: dict[str, np.ndarray] = {}
        for column in _INPUTS:
            line = self._history[column][step]
            line.fill(np.nan)
            line[stocks] = rows[column].to_numpy(dtype=np.float64)
            current[column] = line[None, :]
        nan_row = np.full((1, self.n_stocks), np.nan)

        def lag(column: str, k: int) -> np.ndarray:
            return self._history[column][step - k][None, :] if step >= k else nan_row

        features = _compute(
            current, lag, np.array([[second]], dtype=np.int64), self._stats, self._weights, self.names
        )
        if "day_fit" in self.names:
            # the day up to this second, as a one-day cube
            day_cube = {column: self._history[column][None, : step + 1] for column in _DAY_FIT_INPUTS}
            for name, values in _day_fit(day_cube, self._stats, self._weights, True, self._gap).items():
                features[name] = values[0]
        return _matrix(features, self.names, (np.zeros(len(stocks), dtype=np.int64), stocks))


def describe(feature_set: str) -> dict[str, Any]:
    """Name, version and columns of a feature set (what a model's metadata records)."""
    return {
        "feature_set": feature_set,
        "feature_set_version": FEATURE_SET_VERSIONS[feature_set],
        "features": feature_names(feature_set),
    }


__all__ = [
    "FEATURE_SETS",
    "FEATURE_SET_VERSIONS",
    "FULL_FEATURES",
    "SEED_FEATURES",
    "SnapshotFeaturizer",
    "UnknownFeatureSet",
    "day_features",
    "day_matrix",
    "describe",
    "feature_names",
    "learn_stats",
    "stats_arrays",
]
