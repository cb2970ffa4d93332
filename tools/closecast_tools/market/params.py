"""The synthetic market's options: every mechanism and its strength, with documented defaults (all on).

Prices are relative (1e-4 = 1 bp); "vol" is a stock's per-step (10 s) noise on that day, and the "vol units" of the
imbalance and order-flow drifts are the stock's base vol (see `signal_vol_day`). A strength of 0 turns its
mechanism off. `closecast generate --show-params` prints the defaults; `--params JSON` overrides any of them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MarketParams:
    """Constants of the simulator (see the README's "Market data" section for what each mechanism does)."""

    # --- prices: mid P[k+1] = P[k] + drift[k] + vol * (beta * factor + idio * shock) --------------------------
    vol_median: float = 3.0e-4  # per-step noise of a stock, median over stocks (at the long-run regime)
    vol_spread: float = 0.4  # log-sd of the stocks' base volatilities
    beta_low: float = 0.4
    beta_high: float = 1.2  # loading on the market factor (idiosyncratic part sqrt(1 - beta^2 / 2))
    tail_df: float = 3.0  # Student-t degrees of freedom of every price shock
    tail_clip: float = 30.0  # shocks clipped to +-30 sd (symmetric, so still centred)

    # --- signal in the current row -----------------------------------------------------------------------------
    c_b: float = 0.3  # share of the book pressure (wap - mid) the mid moves by in the next step
    c_z: float = 0.25  # drift per step from the auction imbalance level z (in units of vol / typical |z|)
    # the vol unit of the c_z and c_f drifts: base vol * (that day's vol / base vol) ** signal_vol_day, so 0 = the
    # stock's base vol (the day's vol regime and the stock's vol drift move the noise, not the signals), 1 = its
    # vol that day
    signal_vol_day: float = 0.0

    # --- signal in the day's path ------------------------------------------------------------------------------
    c_f: float = 0.12  # order flow: drift (vol units) per unit of the decaying sum of past imbalance changes
    flow_decay: float = 0.85  # per-step decay of that sum (its memory: about 1 / (1 - decay) steps)
    c_r: float = -0.05  # reversal (< 0) or momentum (> 0) of the stock's recent move relative to the index
    move_decay: float = 0.8  # per-step decay of the recent move (a decaying sum of past mid changes)
    kappa: float = 0.01  # pull of the mid to the hidden clearing price (mid + gap) per step
    kappa_spread: float = 0.2  # log-sd of a stock-day's own pull rate around the day's (hidden from the data)
    phi_g: float = 0.9  # persistence of the hidden clearing gap per step
    sigma_g: float = 0.8  # clearing-gap shock, in units of vol

    # --- dynamics across days (a seed-level path: AR(1) in the parameters, with occasional breaks) -------------
    # the mix of c_b, c_f, kappa rotates: each is its default * exp(amplitude * cos(theta - its phase)),
    # theta turning once in regime_period days on average (their geometric mean stays at the defaults')
    regime_amplitude: float = 1.15
    regime_period: float = 300.0
    regime_jitter: float = 0.05  # random-walk sd of theta per day (radians)
    regime_persistence: float = 0.99  # day-to-day AR(1) coefficient of the strengths' own wander ...
    strength_spread: float = 0.15  # ... and its stationary log-sd (c_b, c_z, c_f, kappa)
    c_r_spread: float = 0.03  # stationary sd of c_r around its default
    break_rate: float = 0.01  # chance per day of a break: the strengths are drawn afresh, the mix jumps
    day_vol_spread: float = 0.25  # stationary log-sd of the day's volatility regime (shared by the stocks)
    day_vol_persistence: float = 0.5
    stock_vol_drift: float = 0.1  # stationary log-sd of a stock's volatility around its base, across days
    beta_drift: float = 0.15  # stationary sd of a stock's beta around its base, across days
    stock_persistence: float = 0.98

    # --- auction imbalance z = flag * imbalance_size / matched_size ---------------------------------------------
    phi_z: float = 0.93
    p_on_on: float = 0.96  # P(imbalance stays non-zero)
    p_off_on: float = 0.15  # P(paired auction gets an imbalance)
    p_on_start: float = 0.8
    z_scale_start: float = 0.88
    z_scale_end: float = 0.176

    # --- book, reference, near and far prices -------------------------------------------------------------------
    half_spread_median: float = 1.5e-4
    half_spread_stock: float = 0.75  # log-sd across stocks
    half_spread_step: float = 0.45  # log-sd step to step
    reference_clamped: float = 0.91  # share of rows whose reference price is held inside [bid, ask]
    matched_median: float = 10e6
    matched_spread: float = 1.5
    book_median: float = 22e3
    book_spread_stock: float = 0.9
    book_spread_step: float = 0.8
    near_scale: float = 0.0011  # sd of log(near / clearing) on most stock-days ...
    near_wide_scale: float = 0.022  # ... and on the stock-days with a thin auction, ...
    near_wide_share: float = 0.25  # ... which are this share of them
    near_clip: float = 0.1  # near price held within +-10 % of the clearing price
    far_scale: float = 0.0025  # the same three for the far price
    far_wide_scale: float = 0.036
    far_wide_share: float = 0.25
    far_outlier_rate: float = 2e-5  # far price off by up to e^6 up or e^-9.5 down (real: 7.7e-5 ... 438)
    missing_stock_day_rate: float = 0.01
    far_missing_rate: float = 0.015

    def check(self) -> MarketParams:
        """Refuse values the simulator cannot honour (ValueError naming the field)."""
        unit = {
            "flow_decay",
            "move_decay",
            "phi_g",
            "phi_z",
            "p_on_on",
            "p_off_on",
            "p_on_start",
            "regime_persistence",
            "day_vol_persistence",
            "stock_persistence",
            "break_rate",
            "reference_clamped",
            "missing_stock_day_rate",
            "far_missing_rate",
            "far_outlier_rate",
            "near_wide_share",
            "far_wide_share",
            "signal_vol_day",
        }
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or value != value:
                raise ValueError(f"params.{field.name}: expected a number, got {value!r}")
            if field.name in unit and not 0.0 <= value <= 1.0:
                raise ValueError(f"params.{field.name}: must be in [0, 1], got {value}")
        if self.regime_period <= 0:
            raise ValueError(f"params.regime_period: must be > 0, got {self.regime_period}")
        if self.tail_df <= 2.0:
            raise ValueError(f"params.tail_df: must be > 2 (finite variance), got {self.tail_df}")
        if not 0.0 <= self.beta_low <= self.beta_high <= 1.4:
            raise ValueError("params.beta_low/beta_high: need 0 <= beta_low <= beta_high <= 1.4")
        # the relative move follows m' = (move_decay + c_r) m + shock (the drifting c_r is kept inside too)
        if not -1.0 < self.move_decay + self.c_r < 1.0:
            raise ValueError("params.c_r/c_r_spread/move_decay: the move term would make prices explode")
        if min(self.vol_median, self.half_spread_median, self.matched_median, self.book_median) <= 0:
            raise ValueError(
                "params: vol_median, half_spread_median, matched_median, book_median must be > 0"
            )
        return self

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def load_params(text: str | None) -> MarketParams:
    """MarketParams from a JSON object (inline, or a file path): the given keys override the defaults."""
    if not text:
        return MarketParams()
    source = text
    if not text.lstrip().startswith(("{", "[")):
        source = Path(text).read_text()
    try:
        overrides: Any = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(f"--params: not JSON ({error})") from None
    if not isinstance(overrides, dict):
        raise ValueError("--params: expected a JSON object of parameter names to numbers")
    known = {field.name for field in fields(MarketParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"--params: unknown parameter(s) {', '.join(unknown)}")
    for name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"params.{name}: expected a number, got {value!r}")
    return replace(MarketParams(), **{name: float(value) for name, value in overrides.items()}).check()
