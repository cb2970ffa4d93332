"""The synthetic market's oracle is the conditional mean the simulator defines; what drifts across days does."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast_tools.market.params import MarketParams, load_params
from closecast_tools.market.regimes import regimes_for
from closecast_tools.market.report import build_features
from closecast_tools.market.simulate import continuations, simulate_block

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("t", "signal_vol_day"), [(12, 0.0), (40, 0.0), (40, 1.0)])
def test_the_oracle_is_the_mean_target_of_many_continuations_from_the_same_state(
    t: int, signal_vol_day: float
) -> None:
    # Given one simulated day (30 stocks) and its whole state at step t, the hidden part included (signals in
    # the stock's base-vol units, the default, or in its vol of that day)
    params = replace(MarketParams(), signal_vol_day=signal_vol_day)
    block = simulate_block(3, np.array([5]), 30, params=params)
    # When the day is continued 5,000 times from that state through the simulator's own transition
    targets, oracle = continuations(block, 0, t, 5_000, np.random.default_rng(t))
    mean = np.nanmean(targets, axis=0)
    standard_error = np.nanstd(targets, axis=0) / np.sqrt(len(targets))
    # Then every stock's mean target is within 4.5 standard errors of the oracle ...
    assert np.nanmax(np.abs(mean - oracle) / standard_error) < 4.5
    # ... a check with teeth: the oracle is spread far wider than that error, and the realised target is
    # not the oracle (predicting zero would fail the check by a mile)
    assert np.nanstd(oracle) > 10 * np.nanmean(standard_error)
    assert np.nanmax(np.abs(mean) / standard_error) > 10


def test_the_past_tells_nothing_about_the_target_beyond_the_oracle(
    generated: dict[int, pd.DataFrame],
) -> None:
    # Given 60 days and a battery of features of each stock-day's past (the report's features)
    frame = generated[2]
    features = build_features(frame).frame
    residual = frame["target"] - frame["oracle"]
    # When each is correlated with target - oracle, and (as a control) with the target itself
    residual_corr, target_corr = {}, {}
    for name in features.columns:
        x = features[name]
        rows = x.notna() & np.isfinite(x)
        residual_corr[name] = np.corrcoef(x[rows], residual[rows])[0, 1]
        target_corr[name] = np.corrcoef(x[rows], frame["target"][rows])[0, 1]
    # Then no feature predicts the residual, though several predict the target
    assert max(abs(c) for c in residual_corr.values()) < 0.02, residual_corr
    assert sum(abs(c) > 0.05 for c in target_corr.values()) >= 4, target_corr


def test_a_days_parameters_do_not_depend_on_how_many_days_are_generated() -> None:
    # Given the seed-level path of parameters, asked for day 300 alone and for days 0..599
    p = MarketParams()
    alone, long = regimes_for(4, np.array([300]), p), regimes_for(4, np.arange(600), p)
    # Then day 300 is the same either way
    assert alone.c_r[0] == long.c_r[300]
    np.testing.assert_array_equal(alone.stock_vol[0], long.stock_vol[300])
    for name, values in alone.strengths.items():
        assert values[0] == long.strengths[name][300]


def test_the_market_regime_drifts_slowly_with_occasional_breaks() -> None:
    # Given 1000 days of the default path
    path = regimes_for(1, np.arange(1000), MarketParams())
    log_flow = np.log(path.strengths["c_f"])
    mix = np.log([path.strengths[name] for name in ("c_b", "c_f", "kappa")]).sum(axis=0)
    # Then the signals' mix shifts while the geometric mean of their strengths (relative to the defaults) holds
    defaults = np.log([MarketParams().c_b, MarketParams().c_f, MarketParams().kappa]).sum()
    np.testing.assert_allclose(mix, defaults, atol=1e-9)
    # and the order-flow strength persists day to day but wanders widely over months
    assert np.corrcoef(log_flow[1:], log_flow[:-1])[0, 1] > 0.8
    assert np.exp(np.quantile(log_flow, 0.9) - np.quantile(log_flow, 0.1)) > 2.5
    # and the reversal of relative moves strengthens and weakens; stocks' volatilities drift too
    assert path.c_r.std() > 0.015 and (path.c_r < 0).all()
    assert np.corrcoef(path.stock_vol[0], path.stock_vol[200])[0, 1] < 0.95


def test_drift_can_be_turned_off() -> None:
    # Given the drift options set to 0 / Then every day has the default strengths and the stocks' own vol
    p = replace(
        MarketParams(),
        regime_amplitude=0.0,
        strength_spread=0.0,
        c_r_spread=0.0,
        stock_vol_drift=0.0,
        beta_drift=0.0,
    )
    path = regimes_for(1, np.arange(50), p)
    assert (path.strengths["c_f"] == p.c_f).all() and (path.c_r == p.c_r).all()
    assert (path.stock_vol == path.stock_vol[0]).all()


def test_params_from_json_override_only_what_they_name(tmp_path: Path) -> None:
    # Given a JSON file turning the order-flow signal off / Then only c_f changes
    file = tmp_path / "p.json"
    file.write_text(json.dumps({"c_f": 0}))
    assert load_params(str(file)) == replace(MarketParams(), c_f=0.0)
    assert load_params('{"c_r": -0.05}').c_r == -0.05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"c_q": 1}', "unknown parameter(s) c_q"),
        ('{"c_f": "high"}', "params.c_f: expected a number"),
        ('{"phi_g": 1.5}', "params.phi_g: must be in [0, 1]"),
        ('{"signal_vol_day": 2}', "params.signal_vol_day: must be in [0, 1]"),
        ('{"c_r": 0.3}', "prices explode"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_params_are_refused_naming_the_field(text: str, message: str) -> None:
    # Given a bad override / Then a ValueError names it
    with pytest.raises(ValueError, match=re.escape(message)):
        load_params(text)


def test_the_signals_vol_unit_is_the_stocks_base_vol_or_its_vol_that_day() -> None:
    # Given five days simulated with the default signal_vol_day 0 and with 1
    days = np.arange(5)
    base = simulate_block(3, days, 30).internals["dyn"]
    daily = simulate_block(3, days, 30, params=replace(MarketParams(), signal_vol_day=1.0)).internals["dyn"]
    # Then by default the drifts' vol unit is each stock's base vol, the same every day, while the noise's vol
    # moves from day to day; with 1 it is the stock's vol of that day
    assert np.allclose(base.sv, base.sv[:1]) and not np.allclose(base.v, base.v[:1])
    assert np.allclose(daily.sv, daily.v)
