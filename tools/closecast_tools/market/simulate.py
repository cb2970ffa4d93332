"""One block of auction days: the price dynamics, the quotes, and the exact oracle of every target.

Per stock-day, step k = second 10k, all prices relative (the WAP is 1.0 at second 0), arithmetic so that
conditional means stay linear:

    P[k+1] = P[k] + mu[k] + v * (beta * f[k+1] + idio * e[k+1])           mid price; f shared by all stocks
    mu[k]  = c_b * q[k]                         book pressure q = wap/mid - 1 (current row)
           + v * c_z * z[k] / zs[k]             auction imbalance z = flag * imbalance / matched (current row)
           + v * c_f * o[k]                     order flow: o[k] = flow_decay * o[k-1] + (z[k] - z[k-1]) / zs[k]
           + c_r * (m[k] - index of m[k])       the stock's recent move against the index's:
                                                m[k] = move_decay * m[k-1] + (P[k] - P[k-1])
           + kappa_sd * g[k]                    pull to the hidden clearing price P + g, at a hidden rate
    g[k+1] = phi_g * g[k] + v * sigma_g * eta;  z: a Markov on/off chain times an AR(1) (as Kaggle's flag)

v, beta, the strengths c_* and kappa change across days (regimes.py); kappa_sd also varies by stock-day. The
reference price is the clearing price P + g held inside [bid, ask] on most rows; near and far prices are the
clearing price with (heavy) noise. Every state has a linear conditional mean given the state at t
(E z[k+1] = p_on_on * phi_z * z[k], E g[k+1] = phi_g * g[k], E q[k+n] = 0 for n > 0, shocks centred), so
E[P[t+6] | everything up to t, the hidden state included] is the linear recursion of those means, run for six
steps from every t at once. E[wap[t+6]] = E[P[t+6]] (the book at t+6 is independent and centred), and the
target is linear in the WAPs at t+6 given t, so the oracle - the conditional expectation of the target, index
part included - is exact up to float rounding:

    oracle[i,t] = 1e4 * (E P[i,t+6] / wap[i,t] - sum_j w_j E P[j,t+6] / sum_j w_j wap[j,t])

The days are simulated to second 600 so that the last snapshots (t = 490..540) have targets too. Each day's
random numbers come from its own stream (seed, 1, date_id), and the day's parameters from the seed's path, so
a day is the same whatever the number of days generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from closecast.market.schema import N_STOCKS, SECONDS_STEP, SNAPSHOTS_PER_DAY
from closecast_ml.targets import BPS, HORIZON_STEPS, _weights_array, targets_from_cube
from closecast_tools.market.params import MarketParams
from closecast_tools.market.regimes import regimes_for, stock_constants

STEPS = SNAPSHOTS_PER_DAY + HORIZON_STEPS  # 61: seconds 0..600
NEAR_FAR_FROM_STEP = 300 // SECONDS_STEP


@dataclass
class Block:
    """Cubes (D, 61, S) of a block of days (S = stocks kept), plus the (D, 55, S) targets and oracle."""

    present: np.ndarray  # (D, S) bool
    imbalance: np.ndarray
    flag: np.ndarray
    reference: np.ndarray
    matched: np.ndarray
    far: np.ndarray
    near: np.ndarray
    bid: np.ndarray
    bid_size: np.ndarray
    ask: np.ndarray
    ask_size: np.ndarray
    wap: np.ndarray
    target: np.ndarray
    oracle: np.ndarray
    internals: dict[str, Any] = field(default_factory=dict)  # hidden state, for `continuations`


def _student(rng: np.random.Generator, df: float, shape: tuple[int, ...], clip: float) -> np.ndarray:
    """Unit-variance Student-t shocks, clipped symmetrically (so their mean stays 0)."""
    draws = rng.standard_t(df, size=shape) * np.sqrt((df - 2.0) / df)
    return np.clip(draws, -clip, clip)


_DAY_FIELDS = (
    "present",
    "matched_day",
    "book_day",
    "kappa_sd",
    "near_sd",
    "far_sd",
    "factor",
    "idio",
    "xi",
    "eta",
    "uniform_on",
    "spread_noise",
    "bid_noise",
    "ask_noise",
    "matched_noise",
    "near_noise",
    "far_noise",
    "far_uniform",
    "clamp_uniform",
)


def _price_noise_scale(rng: np.random.Generator, narrow: float, wide: float, share: float) -> np.ndarray:
    """Each stock-day's sd of log(near or far / clearing): narrow, or wide on a share of the stock-days."""
    thin = rng.random(N_STOCKS) < share
    return np.where(thin, wide, narrow) * np.exp(0.3 * rng.standard_normal(N_STOCKS))


def _draw_days(seed: int, date_ids: np.ndarray, p: MarketParams) -> dict[str, np.ndarray]:
    """Every random number of a block of days, drawn per day from the stream (seed, 1, date_id)."""
    fields: dict[str, list[np.ndarray]] = {name: [] for name in _DAY_FIELDS}
    shape = (STEPS, N_STOCKS)
    for date_id in date_ids:
        rng = np.random.default_rng([seed, 1, int(date_id)])
        draws = {
            "present": rng.random(N_STOCKS) >= p.missing_stock_day_rate,
            "matched_day": np.exp(0.35 * rng.standard_normal(N_STOCKS)),
            "book_day": np.exp(0.3 * rng.standard_normal(N_STOCKS)),
            "kappa_sd": np.exp(p.kappa_spread * rng.standard_normal(N_STOCKS)),
            "near_sd": _price_noise_scale(rng, p.near_scale, p.near_wide_scale, p.near_wide_share),
            "far_sd": _price_noise_scale(rng, p.far_scale, p.far_wide_scale, p.far_wide_share),
            "factor": _student(rng, p.tail_df, (STEPS, 1), p.tail_clip),
            "idio": _student(rng, p.tail_df, shape, p.tail_clip),
            "xi": _student(rng, 3.0, shape, 12.0),
            "eta": _student(rng, p.tail_df, shape, p.tail_clip),
            "uniform_on": rng.random(shape),
            "spread_noise": np.exp(p.half_spread_step * rng.standard_normal(shape)),
            "bid_noise": np.exp(p.book_spread_step * rng.standard_normal(shape)),
            "ask_noise": np.exp(p.book_spread_step * rng.standard_normal(shape)),
            "matched_noise": np.exp(0.03 * rng.standard_normal(shape)),
            "near_noise": rng.standard_normal(shape),
            "far_noise": rng.standard_normal(shape),
            "far_uniform": rng.random(shape),
            "clamp_uniform": rng.random(shape),
        }
        for name, value in draws.items():
            fields[name].append(value)
    return {name: np.stack(values) for name, values in fields.items()}


def z_scale(p: MarketParams) -> np.ndarray:
    """Typical |z| at each step: the imbalance shrinks relative to the matched size through the auction."""
    fraction = np.arange(STEPS) / (SNAPSHOTS_PER_DAY - 1)
    return p.z_scale_start * (p.z_scale_end / p.z_scale_start) ** np.minimum(fraction, 1.0)


@dataclass
class _Dynamics:
    """What the drift needs on each day-stock: (D, S) arrays, or (D, 1) for market-wide values."""

    v: np.ndarray
    sv: np.ndarray  # the vol unit of the signals' drift (c_z, c_f): the stock's base vol times a share of v's
    c_b: np.ndarray
    c_z: np.ndarray
    c_f: np.ndarray
    c_r: np.ndarray
    kappa: np.ndarray
    index_weights: np.ndarray  # (D, S): the index weight of each present stock, 0 if absent
    beta: np.ndarray  # (D, S)
    zs: np.ndarray  # (61,): typical |z| at each step

    @property
    def idio(self) -> np.ndarray:
        return np.sqrt(1.0 - self.beta**2 / 2.0)

    def relative(self, move: np.ndarray) -> np.ndarray:
        """move - its index-weighted mean over the present stocks, for (D, S) or (D, T, S) arrays."""
        w = self.index_weights if move.ndim == 2 else self.index_weights[:, None, :]
        index = (move * w).sum(axis=-1, keepdims=True) / w.sum(axis=-1, keepdims=True)
        return move - index

    def drift(
        self, mid_pull: np.ndarray, z: np.ndarray, zs: np.ndarray, flow: np.ndarray, move: np.ndarray
    ) -> np.ndarray:
        """mu without the book term: mid_pull is the clearing gap g."""
        expand = (lambda a: a[:, None, :]) if z.ndim == 3 else (lambda a: a)
        v = expand(self.sv)
        return (
            v * (expand(self.c_z) * z / zs + expand(self.c_f) * flow)
            + expand(self.kappa) * mid_pull
            + expand(self.c_r) * self.relative(move)
        )


@dataclass
class _State:
    """The state of every stock-day at one step: (D, S) arrays (on: the imbalance chain is on)."""

    mid: np.ndarray
    gap: np.ndarray
    z: np.ndarray
    flow: np.ndarray
    move: np.ndarray
    on: np.ndarray


@dataclass
class _Shocks:
    """The random numbers of one step: factor (D, 1), the rest (D, S)."""

    factor: np.ndarray
    idio: np.ndarray
    eta: np.ndarray
    uniform_on: np.ndarray
    xi: np.ndarray


def _advance(
    state: _State, k: int, pressure: np.ndarray, shocks: _Shocks, dyn: _Dynamics, p: MarketParams
) -> _State:
    """The state at step k + 1 from the state and the book pressure at step k (the model's only transition)."""
    zs = dyn.zs
    mu = dyn.drift(state.gap, state.z, zs[k], state.flow, state.move) + dyn.c_b * pressure
    shock = dyn.beta * shocks.factor + dyn.idio * shocks.idio
    mid = state.mid + mu + dyn.v * shock
    on = shocks.uniform_on < np.where(state.on, p.p_on_on, p.p_off_on)
    innovation = zs[k + 1] * np.sqrt(1.0 - p.phi_z**2)  # scale of xi entering z[k+1]
    z = np.where(on, p.phi_z * state.z + innovation * shocks.xi, 0.0)
    return _State(
        mid=mid,
        gap=p.phi_g * state.gap + dyn.v * p.sigma_g * shocks.eta,
        z=z,
        flow=p.flow_decay * state.flow + (z - state.z) / zs[k + 1],
        move=p.move_decay * state.move + (mid - state.mid),
        on=on,
    )


def _book(
    half_base: np.ndarray,
    book: np.ndarray,
    spread_noise: np.ndarray,
    bid_noise: np.ndarray,
    ask_noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(half spread, bid size, ask size, book pressure q = wap/mid - 1); q is symmetric around 0 because the
    bid and ask sizes are exchangeable, and independent of everything else."""
    half = half_base * spread_noise
    bid_size = np.maximum(np.round(book * bid_noise, 2), 1.0)
    ask_size = np.maximum(np.round(book * ask_noise, 2), 1.0)
    return half, bid_size, ask_size, half * (bid_size - ask_size) / (bid_size + ask_size)


def simulate_block(
    seed: int, date_ids: np.ndarray, n_stocks: int = N_STOCKS, params: MarketParams | None = None
) -> Block:
    """Simulate the given days. All 200 stocks are simulated (they make the index the moves are measured
    against), then cut to the first n_stocks, whose index the targets and the oracle use: a stock's day is
    the same whatever n_stocks is."""
    p = params or MarketParams()
    date_ids = np.asarray(date_ids, dtype=np.int64)
    stocks = stock_constants(seed, p)
    regimes = regimes_for(seed, date_ids, p)
    draws = _draw_days(seed, date_ids, p)
    n_days = len(date_ids)
    shape = (n_days, STEPS, N_STOCKS)
    present = draws["present"]
    weights = _weights_array()
    market = {name: values[:, None] for name, values in regimes.strengths.items()}
    v = regimes.day_vol[:, None] * regimes.stock_vol  # each stock's vol that day
    dyn = _Dynamics(
        v=v,
        sv=stocks.vol[None, :] * (v / stocks.vol[None, :]) ** p.signal_vol_day,
        c_b=market["c_b"],
        c_z=market["c_z"],
        c_f=market["c_f"],
        c_r=regimes.c_r[:, None],
        kappa=market["kappa"] * draws["kappa_sd"],
        index_weights=np.where(present, weights[None, :], 0.0),
        beta=regimes.beta,
        zs=z_scale(p),
    )
    zs = dyn.zs

    matched = np.round(
        stocks.matched[None, None, :]
        * draws["matched_day"][:, None, :]
        * (1.0 + 0.6 * np.arange(STEPS) / STEPS)[None, :, None]
        * draws["matched_noise"],
        2,
    )
    matched = np.maximum(matched, 1000.0)
    half_base = stocks.half_spread[None, None, :]
    book = stocks.book[None, None, :] * draws["book_day"][:, None, :]
    half, bid_size, ask_size, pressure = _book(
        half_base, book, draws["spread_noise"], draws["bid_noise"], draws["ask_noise"]
    )

    mid = np.empty(shape)
    gap = np.empty(shape)
    z = np.empty(shape)
    flow = np.empty(shape)
    move = np.empty(shape)
    on = draws["uniform_on"][:, 0, :] < p.p_on_start
    z[:, 0, :] = np.where(on, zs[0] * draws["xi"][:, 0, :], 0.0)
    flow[:, 0, :] = 0.0
    move[:, 0, :] = 0.0
    mid[:, 0, :] = 1.0 / (1.0 + pressure[:, 0, :])  # so that wap at second 0 is 1.0
    gap[:, 0, :] = dyn.v * p.sigma_g / np.sqrt(1.0 - p.phi_g**2) * draws["eta"][:, 0, :]
    state = _State(mid[:, 0], gap[:, 0], z[:, 0], flow[:, 0], move[:, 0], on)
    for k in range(STEPS - 1):
        shocks = _Shocks(
            draws["factor"][:, k + 1], draws["idio"][:, k + 1], draws["eta"][:, k + 1],
            draws["uniform_on"][:, k + 1], draws["xi"][:, k + 1],
        )  # fmt: skip
        state = _advance(state, k, pressure[:, k], shocks, dyn, p)
        mid[:, k + 1], gap[:, k + 1], z[:, k + 1] = state.mid, state.gap, state.z
        flow[:, k + 1], move[:, k + 1] = state.flow, state.move

    bid = mid * (1.0 - half)
    ask = mid * (1.0 + half)
    wap = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
    kept = slice(0, n_stocks)
    wap_present = np.where(present[:, None, kept], wap[..., kept], np.nan)
    targets = targets_from_cube(wap_present, weights[kept])  # (D, 55, n_stocks)
    expected = _expected_mid(dyn, p, mid, gap, z, flow, move, pressure)
    oracle = _oracle(expected[..., kept], wap_present, weights[kept])

    imbalance = np.round(np.abs(z) * matched, 2)
    flag = np.sign(z).astype(np.int8)
    clearing = mid + gap
    reference = np.where(draws["clamp_uniform"] < p.reference_clamped, np.clip(clearing, bid, ask), clearing)
    near_log = np.clip(draws["near_sd"][:, None, :] * draws["near_noise"], -p.near_clip, p.near_clip)
    near = clearing * np.exp(near_log)
    far = clearing * np.exp(draws["far_sd"][:, None, :] * draws["far_noise"])
    # rare far-price outliers: u / rate is uniform given u < rate; its halves pick up or down
    u = draws["far_uniform"] / max(p.far_outlier_rate, 1e-300)
    size = 0.3 + 0.7 * np.where(u < 0.5, 2.0 * u, 2.0 * u - 1.0)
    outlier_log = np.where(u < 0.5, 6.0 * size, -9.5 * size)
    far = np.where(draws["far_uniform"] < p.far_outlier_rate, clearing * np.exp(outlier_log), far)
    before = np.arange(STEPS)[None, :, None] < NEAR_FAR_FROM_STEP
    near = np.where(before, np.nan, near)
    far = np.where(before | (draws["far_uniform"] > 1.0 - p.far_missing_rate), np.nan, far)
    return Block(
        present=present[:, kept],
        imbalance=imbalance[..., kept],
        flag=flag[..., kept],
        reference=reference[..., kept],
        matched=matched[..., kept],
        far=far[..., kept],
        near=near[..., kept],
        bid=bid[..., kept],
        bid_size=bid_size[..., kept],
        ask=ask[..., kept],
        ask_size=ask_size[..., kept],
        wap=wap[..., kept],
        target=targets,
        oracle=oracle,
        internals={
            "dyn": dyn,
            "params": p,
            "cubes": {"mid": mid, "gap": gap, "z": z, "flow": flow, "move": move, "pressure": pressure},
            "half_base": half_base,
            "book": book,
        },
    )


def _expected_mid(
    dyn: _Dynamics,
    p: MarketParams,
    mid: np.ndarray,
    gap: np.ndarray,
    z: np.ndarray,
    flow: np.ndarray,
    move: np.ndarray,
    pressure: np.ndarray,
) -> np.ndarray:
    """E[P[t+6] | the state at t] for t = 0..54: the conditional means propagated six steps from every t."""
    n = SNAPSHOTS_PER_DAY
    zs = dyn.zs
    decay_z = p.p_on_on * p.phi_z
    e_mid, e_gap, e_z = mid[:, :n].copy(), gap[:, :n].copy(), z[:, :n].copy()
    e_flow, e_move = flow[:, :n].copy(), move[:, :n].copy()
    for ahead in range(HORIZON_STEPS):
        step_zs = zs[ahead : ahead + n][None, :, None]
        mu = dyn.drift(e_gap, e_z, step_zs, e_flow, e_move)
        if ahead == 0:
            mu += dyn.c_b[:, None, :] * pressure[:, :n]  # the book at t is known; later books are centred
        e_mid += mu
        e_move = p.move_decay * e_move + mu
        next_z = decay_z * e_z
        e_flow = p.flow_decay * e_flow + (next_z - e_z) / zs[ahead + 1 : ahead + 1 + n][None, :, None]
        e_z = next_z
        e_gap = p.phi_g * e_gap
    return e_mid


def _oracle(e_mid: np.ndarray, wap: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """E[target] from E[wap at t+6] = E[P[t+6]], over the stocks present (the others' WAP is NaN)."""
    now = wap[:, :SNAPSHOTS_PER_DAY, :]
    present = ~np.isnan(now)
    index_now = np.where(present, now, 0.0) @ weights
    index_later = np.where(present, e_mid, 0.0) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return (e_mid / now - (index_later / index_now)[..., None]) * BPS


def continuations(
    block: Block, day: int, t: int, n_paths: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo check of the oracle: `n_paths` fresh continuations of day `day` (index in the block) from its
    whole state at step t (observable and hidden), through the simulator's own transition. Returns the targets
    at t of every path (n_paths, S) and the block's oracle at t (S,); their mean should match it."""
    internals = block.internals
    dyn_day: _Dynamics = internals["dyn"]
    p: MarketParams = internals["params"]
    cubes = internals["cubes"]
    n_stocks = block.wap.shape[-1]
    n_all = dyn_day.v.shape[-1]

    def day_row(array: np.ndarray) -> np.ndarray:
        return array[day : day + 1]

    dyn = _Dynamics(
        v=day_row(dyn_day.v),
        sv=day_row(dyn_day.sv),
        c_b=day_row(dyn_day.c_b),
        c_z=day_row(dyn_day.c_z),
        c_f=day_row(dyn_day.c_f),
        c_r=day_row(dyn_day.c_r),
        kappa=day_row(dyn_day.kappa),
        index_weights=day_row(dyn_day.index_weights),
        beta=day_row(dyn_day.beta),
        zs=dyn_day.zs,
    )
    paths = (n_paths, n_all)
    start = {
        name: np.broadcast_to(cubes[name][day, t], paths).copy()
        for name in ("mid", "gap", "z", "flow", "move")
    }
    state = _State(**start, on=start["z"] != 0.0)
    pressure = np.broadcast_to(cubes["pressure"][day, t], paths)
    half_base, book = internals["half_base"][0, 0], internals["book"][day, 0]
    for k in range(t, t + HORIZON_STEPS):
        shocks = _Shocks(
            factor=_student(rng, p.tail_df, (n_paths, 1), p.tail_clip),
            idio=_student(rng, p.tail_df, paths, p.tail_clip),
            eta=_student(rng, p.tail_df, paths, p.tail_clip),
            uniform_on=rng.random(paths),
            xi=_student(rng, 3.0, paths, 12.0),
        )
        state = _advance(state, k, pressure, shocks, dyn, p)
        _, _, _, pressure = _book(
            half_base,
            book,
            np.exp(p.half_spread_step * rng.standard_normal(paths)),
            np.exp(p.book_spread_step * rng.standard_normal(paths)),
            np.exp(p.book_spread_step * rng.standard_normal(paths)),
        )
    later = (state.mid * (1.0 + pressure))[:, :n_stocks]  # the WAP at t + 6
    now = block.wap[day, t]
    weights = dyn.index_weights[0, :n_stocks]
    index_ratio = (later @ weights) / (now @ weights)
    targets = (later / now - index_ratio[:, None]) * BPS
    present = block.present[day]
    return np.where(present, targets, np.nan), np.where(present, block.oracle[day, t], np.nan)
