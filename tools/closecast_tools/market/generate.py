"""A synthetic closing-auction market in the exact Kaggle schema, with the exact oracle of every target.

The model (all prices relative, per stock-day, vectorised over days x stocks; step k = second 10k):

* mid price    P[k+1] = P[k] + mu[k] + e[k+1]     (arithmetic: conditional means stay linear, hence exact)
* noise        e = day_vol * vol_i * (beta_i * f + idio), f a market factor shared by all stocks; f and idio
               are unit-variance Student-t draws (fat tails), clipped symmetrically (so their mean stays 0)
* drift        mu[k] = vol_i * C_Z * z[k] / zscale[k]  + KAPPA * g[k] + C_B * b[k]  - all observable:
    z[k] = flag * imbalance_size / matched_size (the auction imbalance; 0 when the flag is 0),
    g[k] = reference_price - mid,
    b[k] = wap / mid - 1 (book pressure: wap = mid * (1 + h * (bid_size-ask_size)/(bid_size+ask_size)))
* state        z[k+1] = B[k+1] * (PHI_Z * z[k] + s[k] * xi)   B a Markov on/off chain (off = paired, flag 0)
               g[k+1] = PHI_G * g[k] + vol_i * SIGMA_G * eta
               b[k]   = independent each step, symmetric around 0
* book         bid = P(1-h), ask = P(1+h), random sizes; wap = Kaggle's WAP of those four numbers, exactly.

Because every state variable has a linear conditional mean (E z[k+n] = (P11*PHI_Z)^n z[k], E g[k+n] = PHI_G^n
g[k], E b[k+n] = 0) and mu is linear in them, E[P[t+6] | what is observable at t] is a closed form, and
E[wap[t+6]] = E[P[t+6]] (the book term at t+6 is independent and centred). The target is linear in the
WAPs at t+6 given time t, so the oracle - the conditional expectation of the target, index part included -
is exact up to float rounding:

    oracle[i,t] = 1e4 * (E P[i,t+6] / wap[i,t] - sum_j w_j E P[j,t+6] / sum_j w_j wap[j,t])

The days are simulated to second 600 so that the last snapshots (t = 490..540) have targets too. Each day
draws from its own random stream (seed, date_id), so a day is the same whatever the number of days generated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from closecast.market.schema import KAGGLE_COLUMNS, N_STOCKS, SECONDS_STEP, SNAPSHOTS_PER_DAY
from closecast_ml.dataset import DATASET_VERSION, MANIFEST_NAME, ORACLE_NAME, TRAIN_NAME
from closecast_ml.kaggle import expected_row_ids, frame_dtypes
from closecast_ml.targets import BPS, HORIZON_STEPS, _weights_array, targets_from_cube

STEPS = SNAPSHOTS_PER_DAY + HORIZON_STEPS  # 61: seconds 0..600
NEAR_FAR_FROM_STEP = 300 // SECONDS_STEP
Format = Literal["parquet", "csv"]


@dataclass(frozen=True)
class MarketParams:
    """The model's constants (relative prices; 1e-4 = 1 bp). Calibrated: see tests/unit/market."""

    vol_median: float = 2.95e-4  # per-step (10 s) noise of a stock, median over stocks
    vol_spread: float = 0.4  # log-sd of the stocks' volatilities
    day_vol_spread: float = 0.3  # log-sd of a day's volatility regime (shared by the stocks)
    beta_low: float = 0.4
    beta_high: float = 1.2  # market-factor loading (the idiosyncratic part is sqrt(1 - beta^2 / 2))
    tail_df: float = 3.0  # Student-t degrees of freedom of every shock
    tail_clip: float = 30.0  # shocks clipped to +-30 sd (symmetric, so still centred)
    c_z: float = 0.18  # drift per step from the normalised imbalance, in units of the stock's vol
    kappa: float = 0.12  # pull of the mid towards the reference price per step
    c_b: float = 0.2  # share of the book pressure the mid moves by in the next step
    phi_z: float = 0.93
    p_on_on: float = 0.96  # P(imbalance stays non-zero)
    p_off_on: float = 0.15  # P(paired auction gets an imbalance)
    p_on_start: float = 0.8
    z_scale_start: float = 0.88
    z_scale_end: float = 0.176
    phi_g: float = 0.9
    sigma_g: float = 0.5  # reference-gap shock, in units of the stock's vol
    half_spread_median: float = 1.5e-4
    matched_median: float = 10e6
    matched_spread: float = 1.5
    book_median: float = 22e3
    book_spread_stock: float = 0.9
    book_spread_step: float = 0.8
    near_noise: float = 0.0105  # log-sd of the near price around the reference price
    missing_stock_day_rate: float = 0.01
    far_missing_rate: float = 0.015


def _student(rng: np.random.Generator, df: float, shape: tuple[int, ...], clip: float) -> np.ndarray:
    """Unit-variance Student-t shocks, clipped symmetrically."""
    draws = rng.standard_t(df, size=shape) * np.sqrt((df - 2.0) / df)
    return np.clip(draws, -clip, clip)


def _standardised(draws: np.ndarray) -> np.ndarray:
    """Normal draws shifted and scaled to mean 0 and sd 1 exactly: the cross-section of stock volatilities is
    then the same for every seed (only which stock gets which changes), so the calibration holds per seed."""
    return (draws - draws.mean()) / draws.std()


@dataclass
class _Stocks:
    vol: np.ndarray
    beta: np.ndarray
    idio: np.ndarray
    half_spread: np.ndarray
    matched: np.ndarray
    book: np.ndarray


def _stock_constants(seed: int, n_stocks: int, p: MarketParams) -> _Stocks:
    rng = np.random.default_rng([seed, 7_777_777])
    beta = rng.uniform(p.beta_low, p.beta_high, N_STOCKS)[:n_stocks]
    return _Stocks(
        vol=p.vol_median * np.exp(p.vol_spread * _standardised(rng.standard_normal(N_STOCKS)))[:n_stocks],
        beta=beta,
        idio=np.sqrt(1.0 - beta**2 / 2.0),
        half_spread=p.half_spread_median * np.exp(0.5 * rng.standard_normal(N_STOCKS))[:n_stocks],
        matched=p.matched_median * np.exp(p.matched_spread * rng.standard_normal(N_STOCKS))[:n_stocks],
        book=p.book_median * np.exp(p.book_spread_stock * rng.standard_normal(N_STOCKS))[:n_stocks],
    )


@dataclass
class _DayDraws:
    """Every random number of a block of days, drawn per day from the stream (seed, date_id)."""

    present: np.ndarray  # (D, S)
    day_vol: np.ndarray  # (D,)
    matched_day: np.ndarray  # (D, S)
    book_day: np.ndarray  # (D, S)
    factor: np.ndarray  # (D, K)
    idio: np.ndarray  # (D, K, S)
    xi: np.ndarray  # (D, K, S)
    eta: np.ndarray  # (D, K, S)
    uniform_on: np.ndarray  # (D, K, S)
    spread_noise: np.ndarray  # (D, K, S)
    bid_noise: np.ndarray  # (D, K, S)
    ask_noise: np.ndarray  # (D, K, S)
    matched_noise: np.ndarray  # (D, K, S)
    near_noise: np.ndarray  # (D, K, S)
    far_noise: np.ndarray  # (D, K, S)
    far_missing: np.ndarray  # (D, K, S)


def _draw_days(seed: int, date_ids: np.ndarray, n_stocks: int, p: MarketParams) -> _DayDraws:
    fields: dict[str, list[np.ndarray]] = {name: [] for name in _DayDraws.__dataclass_fields__}
    shape = (STEPS, N_STOCKS)
    for date_id in date_ids:
        rng = np.random.default_rng([seed, 1, int(date_id)])
        # always draw for the 200 stocks, then cut: a day is the same whatever --stocks says
        draws = {
            "present": rng.random(N_STOCKS) >= p.missing_stock_day_rate,
            "day_vol": np.exp(p.day_vol_spread * rng.standard_normal()),
            "matched_day": np.exp(0.35 * rng.standard_normal(N_STOCKS)),
            "book_day": np.exp(0.3 * rng.standard_normal(N_STOCKS)),
            "factor": _student(rng, p.tail_df, (STEPS,), p.tail_clip),
            "idio": _student(rng, p.tail_df, shape, p.tail_clip),
            "xi": _student(rng, 3.0, shape, 12.0),
            "eta": _student(rng, p.tail_df, shape, p.tail_clip),
            "uniform_on": rng.random(shape),
            "spread_noise": np.exp(0.35 * rng.standard_normal(shape)),
            "bid_noise": np.exp(p.book_spread_step * rng.standard_normal(shape)),
            "ask_noise": np.exp(p.book_spread_step * rng.standard_normal(shape)),
            "matched_noise": np.exp(0.03 * rng.standard_normal(shape)),
            "near_noise": _student(rng, 3.0, shape, 40.0),
            "far_noise": _student(rng, 2.2, shape, 400.0),
            "far_missing": rng.random(shape) < p.far_missing_rate,
        }
        for name, value in draws.items():
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[-1] == N_STOCKS:
                value = value[..., :n_stocks]
            fields[name].append(np.asarray(value))
    return _DayDraws(**{name: np.stack(values) for name, values in fields.items()})


def _z_scale(p: MarketParams) -> np.ndarray:
    """Typical |z| at each step: the imbalance shrinks relative to the matched size through the auction."""
    fraction = np.arange(STEPS) / (SNAPSHOTS_PER_DAY - 1)
    return p.z_scale_start * (p.z_scale_end / p.z_scale_start) ** np.minimum(fraction, 1.0)


def simulate_block(
    seed: int, date_ids: np.ndarray, n_stocks: int = N_STOCKS, params: MarketParams | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulate the given days; returns (Kaggle frame, oracle aligned with the frame's rows)."""
    p = params or MarketParams()
    stocks = _stock_constants(seed, n_stocks, p)
    draws = _draw_days(seed, np.asarray(date_ids), n_stocks, p)
    n_days = len(date_ids)
    shape = (n_days, STEPS, n_stocks)
    # the drift scales with the stock's (constant, learnable) vol; the shocks also with the day's regime
    vol = np.broadcast_to(stocks.vol[None, :], (n_days, n_stocks))  # (D, S)
    shock_vol = draws.day_vol[:, None] * vol
    zscale = _z_scale(p)
    innovation = zscale[1:] * np.sqrt(1.0 - p.phi_z**2)  # scale of xi entering z[k+1]

    mid = np.empty(shape)
    gap = np.empty(shape)
    z = np.empty(shape)
    matched = np.round(
        stocks.matched[None, None, :]
        * draws.matched_day[:, None, :]
        * (1.0 + 0.6 * np.arange(STEPS) / STEPS)[None, :, None]
        * draws.matched_noise,
        2,
    )
    matched = np.maximum(matched, 1000.0)
    half = stocks.half_spread[None, None, :] * draws.spread_noise
    book = stocks.book[None, None, :] * draws.book_day[:, None, :]
    bid_size = np.maximum(np.round(book * draws.bid_noise, 2), 1.0)
    ask_size = np.maximum(np.round(book * draws.ask_noise, 2), 1.0)
    # q: book imbalance; symmetric because bid and ask sizes are exchangeable
    pressure = half * (bid_size - ask_size) / (bid_size + ask_size)

    on = draws.uniform_on[:, 0, :] < p.p_on_start
    z_raw = np.where(on, zscale[0] * draws.xi[:, 0, :], 0.0)
    mid[:, 0, :] = 1.0 / (1.0 + pressure[:, 0, :])  # so that wap at second 0 is 1.0
    gap[:, 0, :] = shock_vol * p.sigma_g / np.sqrt(1.0 - p.phi_g**2) * draws.eta[:, 0, :]
    imbalance = np.empty(shape)
    for k in range(STEPS):
        imbalance[:, k, :] = np.round(np.abs(z_raw) * matched[:, k, :], 2)
        z[:, k, :] = np.sign(z_raw) * imbalance[:, k, :] / matched[:, k, :]
        if k == STEPS - 1:
            break
        drift = vol * p.c_z * z[:, k, :] / zscale[k] + p.kappa * gap[:, k, :] + p.c_b * pressure[:, k, :]
        shock = (
            stocks.beta[None, :] * draws.factor[:, k + 1, None]
            + stocks.idio[None, :] * draws.idio[:, k + 1, :]
        )
        mid[:, k + 1, :] = mid[:, k, :] + drift + shock_vol * shock
        gap[:, k + 1, :] = p.phi_g * gap[:, k, :] + shock_vol * p.sigma_g * draws.eta[:, k + 1, :]
        on = draws.uniform_on[:, k + 1, :] < np.where(on, p.p_on_on, p.p_off_on)
        z_raw = np.where(on, p.phi_z * z[:, k, :] + innovation[k] * draws.xi[:, k + 1, :], 0.0)

    bid = mid * (1.0 - half)
    ask = mid * (1.0 + half)
    wap = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
    reference = mid + gap
    present = np.broadcast_to(draws.present[:, None, :], shape)
    weights = _weights_array()[:n_stocks]
    wap_present = np.where(present, wap, np.nan)
    targets = targets_from_cube(wap_present, weights)  # (D, 55, S)
    oracle = _oracle(mid, z, gap, pressure, wap_present, vol, zscale, weights, p)

    flag = np.sign(z).astype(np.int8)
    near = reference * np.exp(p.near_noise * draws.near_noise)
    far = reference * np.exp(np.clip(0.01 * draws.far_noise, -9.0, 6.0))
    before = np.arange(STEPS)[None, :, None] < NEAR_FAR_FROM_STEP
    near = np.where(before, np.nan, near)
    far = np.where(before | draws.far_missing, np.nan, far)

    keep = present[:, :SNAPSHOTS_PER_DAY, :]
    days = np.broadcast_to(np.asarray(date_ids, dtype=np.int64)[:, None, None], keep.shape)
    seconds = np.broadcast_to((np.arange(SNAPSHOTS_PER_DAY) * SECONDS_STEP)[None, :, None], keep.shape)
    stock_ids = np.broadcast_to(np.arange(n_stocks)[None, None, :], keep.shape)

    def rows(cube: np.ndarray) -> np.ndarray:
        return cube[:, :SNAPSHOTS_PER_DAY, :][keep]

    date_col, second_col, stock_col = days[keep], seconds[keep], stock_ids[keep]
    dtypes = frame_dtypes()
    columns: dict[str, np.ndarray] = {
        "stock_id": stock_col,
        "date_id": date_col,
        "seconds_in_bucket": second_col,
        "imbalance_size": rows(imbalance),
        "imbalance_buy_sell_flag": rows(flag),
        "reference_price": rows(reference),
        "matched_size": rows(matched),
        "far_price": rows(far),
        "near_price": rows(near),
        "bid_price": rows(bid),
        "bid_size": rows(bid_size),
        "ask_price": rows(ask),
        "ask_size": rows(ask_size),
        "wap": rows(wap),
        "target": targets[keep],
        "time_id": date_col * SNAPSHOTS_PER_DAY + second_col // SECONDS_STEP,
    }
    frame = pd.DataFrame({name: values.astype(dtypes[name]) for name, values in columns.items()})
    frame["row_id"] = pd.Series(expected_row_ids(date_col, second_col, stock_col).to_pandas(), dtype="str")
    return frame[list(KAGGLE_COLUMNS)], oracle[keep]


def _oracle(
    mid: np.ndarray,
    z: np.ndarray,
    gap: np.ndarray,
    pressure: np.ndarray,
    wap: np.ndarray,
    vol: np.ndarray,
    zscale: np.ndarray,
    weights: np.ndarray,
    p: MarketParams,
) -> np.ndarray:
    """E[target | observable at t] for t = 0..54, from the model's closed-form conditional means."""
    n = SNAPSHOTS_PER_DAY
    decay_z = p.p_on_on * p.phi_z
    # E[mid[t+6]] = mid[t] + sum_{m=t}^{t+5} E[mu[m]]
    z_weight = np.array(
        [sum(decay_z ** (m - t) / zscale[m] for m in range(t, t + HORIZON_STEPS)) for t in range(n)]
    )
    gap_weight = sum(p.phi_g**n_ahead for n_ahead in range(HORIZON_STEPS))
    expected_mid = (
        mid[:, :n, :]
        + vol[:, None, :] * p.c_z * z[:, :n, :] * z_weight[None, :, None]
        + p.kappa * gap_weight * gap[:, :n, :]
        + p.c_b * pressure[:, :n, :]
    )
    now = wap[:, :n, :]
    present = ~np.isnan(now)
    index_now = np.where(present, now, 0.0) @ weights
    index_later = np.where(present, expected_mid, 0.0) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return (expected_mid / now - (index_later / index_now)[..., None]) * BPS


def iter_blocks(
    days: int, seed: int, n_stocks: int = N_STOCKS, block_days: int = 32, params: MarketParams | None = None
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """(frame, oracle) for date_id 0..days-1, `block_days` at a time (bounded memory)."""
    for start in range(0, days, block_days):
        yield simulate_block(seed, np.arange(start, min(days, start + block_days)), n_stocks, params)


def generate_frame(
    days: int, seed: int, n_stocks: int = N_STOCKS, params: MarketParams | None = None
) -> pd.DataFrame:
    """The whole market in memory: the Kaggle columns plus `oracle` (for tests and small experiments)."""
    parts = []
    for frame, oracle in iter_blocks(days, seed, n_stocks, params=params):
        parts.append(frame.assign(oracle=oracle))
    return pd.concat(parts, ignore_index=True)


def _csv_writer(path: Path, schema: pa.Schema, handles: list[BinaryIO]) -> pacsv.CSVWriter:
    """Kaggle's CSV layout: a bare header line, no quotes, empty cells for nulls."""
    handle = open(path, "wb")  # noqa: SIM115 - closed by write_dataset after the writer
    handles.append(handle)
    handle.write((",".join(schema.names) + "\n").encode())
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    return pacsv.CSVWriter(handle, schema, write_options=options)


@dataclass
class GenerateSummary:
    out: Path
    format: str
    days: int
    stocks: int
    seed: int
    rows: int
    seconds: float


def write_dataset(
    out: str | Path,
    *,
    days: int,
    seed: int,
    n_stocks: int = N_STOCKS,
    fmt: Format = "parquet",
    params: MarketParams | None = None,
) -> GenerateSummary:
    """Write a generated market to `out`: train.{parquet,csv} + oracle.{parquet,csv} + manifest.json."""
    if not 1 <= n_stocks <= N_STOCKS:
        raise ValueError(f"stocks must be in 1..{N_STOCKS} (the index has weights for {N_STOCKS})")
    if days < 1:
        raise ValueError("days must be >= 1")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_path = out / f"{TRAIN_NAME}.{fmt}"
    oracle_path = out / f"{ORACLE_NAME}.{fmt}"
    rows = 0
    handles: list[BinaryIO] = []
    train_writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    oracle_writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    try:
        for frame, oracle in iter_blocks(days, seed, n_stocks, params=params):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if fmt == "parquet":
                oracle_table = pa.table(
                    {
                        "date_id": frame["date_id"].to_numpy(),
                        "seconds_in_bucket": frame["seconds_in_bucket"].to_numpy(),
                        "stock_id": frame["stock_id"].to_numpy(),
                        "oracle": oracle,
                    }
                )
            else:
                oracle_table = pa.table({"row_id": table.column("row_id"), "oracle": oracle})
            if train_writer is None or oracle_writer is None:
                if fmt == "parquet":
                    train_writer = pq.ParquetWriter(train_path, table.schema, compression="zstd")
                    oracle_writer = pq.ParquetWriter(oracle_path, oracle_table.schema, compression="zstd")
                else:
                    train_writer = _csv_writer(train_path, table.schema, handles)
                    oracle_writer = _csv_writer(oracle_path, oracle_table.schema, handles)
            if fmt == "parquet":
                # one row group per day, so that readers can pick dates cheaply
                for day in np.unique(frame["date_id"].to_numpy()):
                    selection = np.flatnonzero(frame["date_id"].to_numpy() == day)
                    first, last = int(selection[0]), int(selection[-1]) + 1
                    train_writer.write_table(table.slice(first, last - first))
                    oracle_writer.write_table(oracle_table.slice(first, last - first))
            else:
                train_writer.write_table(table)
                oracle_writer.write_table(oracle_table)
            rows += len(frame)
    finally:
        for writer in (train_writer, oracle_writer):
            if writer is not None:
                writer.close()
        for handle in handles:
            handle.close()
    manifest = {
        "kind": "closecast-synthetic-market",
        "version": DATASET_VERSION,
        "seed": seed,
        "days": days,
        "first_date_id": 0,
        "stocks": n_stocks,
        "rows": rows,
        "format": fmt,
        "files": {"train": train_path.name, "oracle": oracle_path.name},
        "params": asdict(params or MarketParams()),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return GenerateSummary(out, fmt, days, n_stocks, seed, rows, time.perf_counter() - started)
