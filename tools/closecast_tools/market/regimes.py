"""What changes across days: the market's regime and each stock's sensitivities, as one seed-level path.

Day d's values follow day d-1's by an AR(1) step (in logs for the strengths and volatilities), and now and
then (`break_rate`) the market-wide strengths are drawn afresh from their long-run distribution. The book,
order-flow and clearing-price strengths drift as a mix (their geometric mean held at the defaults'), so what
predicts the target changes from month to month while how much of it is predictable stays about the same. Day d's
innovations come from their own random stream (seed, 2, d) and the path is the recursion over days 0..d, so a
day is the same whatever the number of days generated. The path is computed lazily up to the largest day
asked for (rounded up, cached), which costs well under a second even for thousands of days.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from closecast.market.schema import N_STOCKS
from closecast_tools.market.params import MarketParams

STRENGTHS = ("c_b", "c_z", "c_f", "kappa")  # multiplicative strengths (log AR(1) around the defaults)
MIXED = ("c_b", "c_f", "kappa")  # strengths whose day-to-day mix drifts with their geometric mean fixed
_PATH_CHUNK = 256


@dataclass(frozen=True)
class Stocks:
    """Constants of each of the 200 stocks (drawn once per seed)."""

    vol: np.ndarray
    beta: np.ndarray
    half_spread: np.ndarray
    matched: np.ndarray
    book: np.ndarray


@dataclass(frozen=True)
class Regimes:
    """Per-day values for the days asked for: market-wide (D,) and per stock (D, 200)."""

    strengths: dict[str, np.ndarray]  # name -> (D,)
    c_r: np.ndarray  # (D,)
    day_vol: np.ndarray  # (D,)
    stock_vol: np.ndarray  # (D, 200): the stock's volatility that day (before the day's regime)
    beta: np.ndarray  # (D, 200)


def _standardised(draws: np.ndarray) -> np.ndarray:
    """Normal draws shifted and scaled to mean 0 and sd 1 exactly: the cross-section of stock volatilities is
    then the same for every seed (only which stock gets which changes), so the calibration holds per seed."""
    return (draws - draws.mean()) / draws.std()


@lru_cache(maxsize=8)
def stock_constants(seed: int, p: MarketParams) -> Stocks:
    rng = np.random.default_rng([seed, 7_777_777])
    beta = rng.uniform(p.beta_low, p.beta_high, N_STOCKS)
    return Stocks(
        vol=p.vol_median * np.exp(p.vol_spread * _standardised(rng.standard_normal(N_STOCKS))),
        beta=beta,
        half_spread=p.half_spread_median * np.exp(p.half_spread_stock * rng.standard_normal(N_STOCKS)),
        matched=p.matched_median * np.exp(p.matched_spread * rng.standard_normal(N_STOCKS)),
        book=p.book_median * np.exp(p.book_spread_stock * rng.standard_normal(N_STOCKS)),
    )


@lru_cache(maxsize=8)
def _path(seed: int, n_days: int, p: MarketParams) -> Regimes:
    n_strengths = len(STRENGTHS)
    log_strength = np.empty((n_days, n_strengths))
    c_r_dev = np.empty(n_days)
    log_day_vol = np.empty(n_days)
    log_vol_dev = np.empty((n_days, N_STOCKS))
    beta_dev = np.empty((n_days, N_STOCKS))
    rho, rho_vol, rho_stock = p.regime_persistence, p.day_vol_persistence, p.stock_persistence
    clip_r = 3.0 * p.c_r_spread
    theta = np.empty(n_days)
    for day in range(n_days):
        rng = np.random.default_rng([seed, 2, day])
        broken = rng.random() < p.break_rate
        market = rng.standard_normal(n_strengths + 2)
        fresh = rng.standard_normal(n_strengths + 1)
        stock = rng.standard_normal((2, N_STOCKS))
        turn, jump = rng.standard_normal(), rng.random()
        if day == 0:
            theta[day] = 2 * np.pi * jump
        else:
            step = 2 * np.pi / p.regime_period + p.regime_jitter * turn
            theta[day] = theta[day - 1] + step + (np.pi * (0.5 + jump) if broken else 0.0)
        if day == 0 or broken:
            log_strength[day] = p.strength_spread * fresh[:n_strengths]
            c_r_dev[day] = p.c_r_spread * fresh[n_strengths]
        else:
            log_strength[day] = (
                rho * log_strength[day - 1] + np.sqrt(1 - rho**2) * p.strength_spread * market[:n_strengths]
            )
            c_r_dev[day] = rho * c_r_dev[day - 1] + np.sqrt(1 - rho**2) * p.c_r_spread * market[n_strengths]
        if day == 0:
            log_day_vol[day] = p.day_vol_spread * market[-1]
            log_vol_dev[day] = p.stock_vol_drift * stock[0]
            beta_dev[day] = p.beta_drift * stock[1]
        else:
            log_day_vol[day] = (
                rho_vol * log_day_vol[day - 1] + np.sqrt(1 - rho_vol**2) * p.day_vol_spread * market[-1]
            )
            scale = np.sqrt(1 - rho_stock**2)
            log_vol_dev[day] = rho_stock * log_vol_dev[day - 1] + scale * p.stock_vol_drift * stock[0]
            beta_dev[day] = rho_stock * beta_dev[day - 1] + scale * p.beta_drift * stock[1]
    c_r_dev = np.clip(c_r_dev, -clip_r, clip_r)
    # the relative move follows m' = (move_decay + c_r) m + shock: keep c_r where that stays stable
    c_r_low, c_r_high = -1.0 - p.move_decay + 0.05, 1.0 - p.move_decay - 0.05
    # the signals trade places rather than all growing or fading at once: the mix rotates (phase theta, one
    # turn per regime_period days on average), and the geometric mean of the mixed strengths stays at their
    # defaults', so the market's predictability holds steady while its sources drift
    mixed = [STRENGTHS.index(name) for name in MIXED]
    log_strength[:, mixed] -= log_strength[:, mixed].mean(axis=1, keepdims=True)
    phases = 2 * np.pi * np.arange(len(MIXED)) / len(MIXED)
    log_strength[:, mixed] += p.regime_amplitude * np.cos(theta[:, None] - phases[None, :])
    stocks = stock_constants(seed, p)
    defaults = {"c_b": p.c_b, "c_z": p.c_z, "c_f": p.c_f, "kappa": p.kappa}
    strengths = {
        name: defaults[name] * np.exp(log_strength[:, column]) for column, name in enumerate(STRENGTHS)
    }
    return Regimes(
        strengths=strengths,
        c_r=np.clip(p.c_r + c_r_dev, c_r_low, c_r_high),
        day_vol=np.exp(log_day_vol),
        stock_vol=stocks.vol[None, :] * np.exp(log_vol_dev),
        beta=np.clip(stocks.beta[None, :] + beta_dev, 0.1, 1.4),
    )


def regimes_for(seed: int, date_ids: np.ndarray, p: MarketParams) -> Regimes:
    """The path's values on the given days (computed up to the largest, rounded up to a chunk, and cached)."""
    date_ids = np.asarray(date_ids, dtype=np.int64)
    if date_ids.size and date_ids.min() < 0:
        raise ValueError("date_id must be >= 0")
    n_days = int(-(-(int(date_ids.max(initial=0)) + 1) // _PATH_CHUNK) * _PATH_CHUNK)
    path = _path(seed, n_days, p)
    return Regimes(
        strengths={name: values[date_ids] for name, values in path.strengths.items()},
        c_r=path.c_r[date_ids],
        day_vol=path.day_vol[date_ids],
        stock_vol=path.stock_vol[date_ids],
        beta=path.beta[date_ids],
    )
