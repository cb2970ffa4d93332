"""Training: refit by date blocks, the guarded daily update, and the errors a job reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from closecast_ml import training
from closecast_ml.model import ModelArtifact
from closecast_ml.training import FeatureSetMismatch, NoTrainingData

from .conftest import SMALL

pytestmark = pytest.mark.unit


def test_fit_holds_out_the_last_days_as_one_date_block(market: pd.DataFrame) -> None:
    """Given 6 days, when fitted with 2 validation days and no final fit, then it trains on days 0..3 and
    validates on 4, 5."""
    model = training.fit(
        market[market["date_id"] <= 5], params=SMALL, valid_days=2, n_rounds=10, final_all_days=False
    )
    assert model.metadata["days_trained"] == [0, 1, 2, 3]
    assert model.metadata["valid_metrics"]["days"] == [4, 5]
    assert model.metadata["valid_metrics"]["mae"] < model.metadata["valid_metrics"]["zero_mae"]


def test_fit_trains_again_on_every_day_with_the_rounds_the_held_out_days_chose(market: pd.DataFrame) -> None:
    """Given 6 days and 2 validation days, when fitted with final_all_days, then the held-out days choose the rounds
    and the model is trained again with them on all 6 days: the same rounds as the early-stopping fit, other
    trees, and the validation figures are the early-stopping fit's."""
    rows = market[market["date_id"] <= 5]
    probe = training.fit(rows, params=SMALL, valid_days=2, n_rounds=10, final_all_days=False)
    model = training.fit(rows, params=SMALL, valid_days=2, n_rounds=10, final_all_days=True)
    assert model.metadata["days_trained"] == [0, 1, 2, 3, 4, 5]
    assert model.metadata["rows_trained"] == int(rows["target"].notna().sum())
    assert model.n_rounds == probe.n_rounds
    assert model.metadata["valid_metrics"]["days"] == [4, 5]
    assert model.metadata["valid_metrics"]["mae"] == pytest.approx(probe.metadata["valid_metrics"]["mae"])
    assert model.digest() != probe.digest()


def test_tuning_records_each_candidate_and_keeps_the_best_by_validation_mae(market: pd.DataFrame) -> None:
    """Given tune=True, then every candidate's validation MAE is recorded and the chosen params are the best's."""
    model = training.fit(market[market["date_id"] <= 5], valid_days=1, tune=True, n_rounds=15)
    search = model.metadata["search"]
    assert len(search) == len(training.SEARCH_SPACE)
    best = min(search, key=lambda trial: trial["valid_mae"])
    assert {k: model.metadata["params"][k] for k in best["params"]} == best["params"]


def test_an_update_records_its_parent_and_predicts_differently(
    small_model: ModelArtifact, market: pd.DataFrame, one_day: pd.DataFrame
) -> None:
    """Given a parent registered with an id and a window of recent days, when updated (no guard, to force a
    child), then the child names its parent, adds rounds, and its predictions differ from the parent's."""
    small_model.metadata |= {"id": 41, "artifact_uri": "s3://bucket/models/41/"}
    result = training.update(small_model, market[market["date_id"].isin([5, 6])], guard_days=0)
    child = result.model
    assert not result.kept_parent
    assert child.metadata["parent"]["id"] == 41
    assert child.metadata["parent"]["artifact_uri"] == "s3://bucket/models/41/"
    assert child.metadata["parent"]["digest"] == small_model.digest()
    assert child.n_rounds == small_model.n_rounds + training.UPDATE_ROUNDS
    assert child.metadata["days_trained"] == [0, 1, 2, 3, 4, 5, 6]
    assert child.metadata["update"]["window_days"] == [5, 6]
    assert "id" not in child.metadata
    assert not np.allclose(child.predict(one_day), small_model.predict(one_day))


def test_the_guard_scores_candidate_and_parent_on_the_newest_unseen_days(
    small_model: ModelArtifact, market: pd.DataFrame
) -> None:
    """Given a window of days 3..6, when updated, then the guard days are 5 and 6 and the evidence holds both
    MAEs; the parent is kept exactly when the candidate did not beat it there by the minimum gain."""
    result = training.update(small_model, market[market["date_id"].between(3, 6)])
    evidence = result.evidence
    assert evidence["guard_days"] == [5, 6]
    assert result.kept_parent == (
        evidence["candidate_mae"] > evidence["parent_mae"] * (1 - training.MIN_GAIN)
    )
    if result.kept_parent:
        assert result.model is small_model


def test_a_guard_that_finds_the_update_worse_keeps_the_parent(
    small_model: ModelArtifact, market: pd.DataFrame
) -> None:
    """Given a window whose training days have scrambled targets, when updated, then the candidate loses on the
    real newest day and the parent is kept, with the reason."""
    window = market[market["date_id"].between(4, 6)].copy()
    older = window["date_id"] < 6
    window.loc[older, "target"] = np.random.default_rng(0).standard_t(3, older.sum()) * 40
    result = training.update(small_model, window, rounds=40, eta_shrink=1.0, guard_days=1)
    assert result.kept_parent and result.model is small_model
    assert "kept the parent" in result.evidence["decision"]


def test_an_update_with_another_feature_set_is_refused(
    small_model: ModelArtifact, market: pd.DataFrame
) -> None:
    """Given a `full` parent, when an update asks for `seed`, then FeatureSetMismatch says both names."""
    with pytest.raises(FeatureSetMismatch, match=r"'full'.*'seed'"):
        training.update(small_model, market[market["date_id"] == 6], feature_set="seed")


def test_rows_without_targets_are_no_training_data(small_model: ModelArtifact, one_day: pd.DataFrame) -> None:
    """Given rows whose targets are all missing, or no rows, then NoTrainingData (fit and update)."""
    unlabelled = one_day.assign(target=np.nan)
    with pytest.raises(NoTrainingData, match="has a target"):
        training.fit(unlabelled)
    with pytest.raises(NoTrainingData, match="no rows"):
        training.update(small_model, one_day.iloc[:0])


def test_update_window_and_refit_schedule_come_from_the_metadata(small_model: ModelArtifact) -> None:
    """Given a model fitted on days up to 5, then the update window is the default, and the scheduled refit is
    due REFIT_EVERY_DAYS days after day 5, not before."""
    assert training.update_window_days(small_model) == training.DEFAULT_UPDATE_WINDOW
    assert small_model.metadata["refit_date_id"] == 5
    assert not training.refit_due(small_model, 5 + training.REFIT_EVERY_DAYS - 1)
    assert training.refit_due(small_model, 5 + training.REFIT_EVERY_DAYS)


def test_light_days_are_sampled_in_proportion_to_their_weight_and_reweighted_to_the_floor() -> None:
    """Given weights from 1 down to 1/64, when sampled, then every row at or above the floor is kept with its
    own weight, a lighter row is kept with probability weight / floor and weighs the floor, so the total weight
    is kept in expectation."""
    weight = np.repeat(0.5 ** np.arange(7.0), 20_000)
    sampled = training._weight_sample(weight, np.random.default_rng(3).random(len(weight)))
    assert sampled is not None
    keep, kept_weight = sampled
    heavy = weight >= training.SAMPLE_WEIGHT_FLOOR
    assert keep[heavy].all()
    np.testing.assert_array_equal(kept_weight[heavy[keep]], weight[heavy])
    assert (kept_weight[~heavy[keep]] == training.SAMPLE_WEIGHT_FLOOR).all()
    for age in (4, 5, 6):  # weights 1/16, 1/32, 1/64 against the floor 1/8
        share = keep[age * 20_000 : (age + 1) * 20_000].mean()
        assert share == pytest.approx(0.5**age / training.SAMPLE_WEIGHT_FLOOR, rel=0.1)
    assert kept_weight.sum() == pytest.approx(weight.sum(), rel=0.01)
    assert training._weight_sample(np.ones(10), np.zeros(10)) is None


def test_each_rows_draw_is_a_function_of_its_key_so_the_sample_ignores_row_order() -> None:
    """Given the keys of 10 days x 200 stocks x 55 seconds, when drawn in two orders, then each row draws the
    same number; the draws are uniform; another seed draws otherwise."""
    date, stock, second = (
        a.ravel() for a in np.meshgrid(np.arange(10), np.arange(200), np.arange(0, 550, 10))
    )
    draws = training._row_uniforms(date, stock, second, seed=7)
    order = np.random.default_rng(0).permutation(len(date))
    np.testing.assert_array_equal(
        training._row_uniforms(date[order], stock[order], second[order], seed=7), draws[order]
    )
    assert ((draws >= 0) & (draws < 1)).all()
    assert np.histogram(draws, bins=10, range=(0, 1))[0] == pytest.approx(
        np.full(10, len(draws) / 10), rel=0.05
    )
    assert np.mean(training._row_uniforms(date, stock, second, seed=8) == draws) < 0.001


def test_sampled_features_are_the_whole_days_features_of_the_kept_rows(
    market: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given rows sampled from days computed a few at a time (block edges inside the training days and at the
    validation days), then each kept row's features are those the whole days give it: lags and cross-sections
    still see every row of the day."""
    from closecast_ml.features import learn_stats

    monkeypatch.setattr(training, "SAMPLE_BLOCK_DAYS", 3)
    rows = market.sort_values(["date_id", "seconds_in_bucket", "stock_id"], kind="stable").reset_index(
        drop=True
    )
    stats = learn_stats(rows)
    n_train = int((rows["date_id"] <= 6).sum())
    keep = np.random.default_rng(0).random(n_train) < 0.3
    sampled = training._sampled_matrix(rows, keep, n_train, "full", stats)
    whole = training.day_matrix(rows, "full", stats)
    expected = np.concatenate([whole[:n_train][keep], whole[n_train:]])
    np.testing.assert_array_equal(sampled, expected)


def test_a_long_history_trains_on_a_sample_of_its_oldest_days(market: pd.DataFrame) -> None:
    """Given 8 days and a half-life of 1 day (the oldest training days weigh 1/64..1/16 of the newest), when
    fitted, then the days older than 3 half-lives are trained on through a sample of about weight / floor of
    their rows, and the sampling is recorded; the seed's configuration is never weighted nor sampled."""
    model = training.fit(market, params=SMALL, valid_days=1, n_rounds=10, half_life_days=1.0)
    train_rows = int((market["date_id"] <= 6).sum())
    assert model.metadata["sample_weight_floor"] == training.SAMPLE_WEIGHT_FLOOR
    day_rows = train_rows / 7
    expected = day_rows * (4 + 0.5 + 0.25 + 0.125)  # ages 0..3 whole, then 1/2, 1/4, 1/8 of a day
    assert model.metadata["rows_trained"] == pytest.approx(expected, rel=0.1)
    assert model.metadata["days_trained"] == list(range(7))
    unsampled = training.fit(market, params=SMALL, valid_days=1, n_rounds=10, half_life_days=0)
    assert unsampled.metadata["sample_weight_floor"] is None and unsampled.metadata["half_life_days"] is None
    # the held-out day is scored on all its rows, sampled or not
    assert model.metadata["valid_metrics"]["zero_mae"] == unsampled.metadata["valid_metrics"]["zero_mae"]
    shuffled = market.sample(frac=1.0, random_state=5).sort_values("date_id", kind="stable")
    again = training.fit(shuffled, params=SMALL, valid_days=1, n_rounds=10, half_life_days=1.0)
    assert again.metadata["rows_trained"] == model.metadata["rows_trained"]
    seed = training.fit(market, feature_set="seed", valid_days=0, n_rounds=5)
    assert seed.metadata["half_life_days"] is None
    assert seed.metadata["sample_weight_floor"] is None
    assert seed.metadata["rows_trained"] == len(market)


def test_the_held_out_days_targets_never_reach_the_per_stock_statistics(market: pd.DataFrame) -> None:
    """Given the same rows with the validation day's targets scaled tenfold, when fitted, then the per-stock
    statistics stored with the model are the same: they are learnt from the training days only."""
    rows = market[market["date_id"] <= 5]
    louder = rows.copy()
    last = louder["date_id"] == 5
    louder.loc[last, "target"] = louder.loc[last, "target"] * 10
    first = training.fit(rows, params=SMALL, valid_days=1, n_rounds=5)
    second = training.fit(louder, params=SMALL, valid_days=1, n_rounds=5)
    assert first.metadata["stats"] == second.metadata["stats"]


def test_a_fit_and_an_update_depend_on_their_rows_not_on_their_order(
    small_model: ModelArtifact, market: pd.DataFrame, one_day: pd.DataFrame
) -> None:
    """Given rows in key order and the same rows shuffled (row subsampling draws by position), when a model is
    fitted on each and the same parent updated on each, then the two fits predict identically and so do the
    two updates: a chain reading its days back from the store trains what an in-process backtest trains."""
    rows = market[market["date_id"] <= 5].sort_values(["date_id", "seconds_in_bucket", "stock_id"])
    shuffled = rows.sample(frac=1.0, random_state=4)
    fits = [
        training.fit(r, params=SMALL, valid_days=1, n_rounds=10, final_all_days=False)
        for r in (rows, shuffled)
    ]
    assert np.array_equal(fits[0].predict(one_day), fits[1].predict(one_day))
    window = market[market["date_id"].between(3, 6)]
    updates = [
        training.update(small_model, w, guard_days=0).model
        for w in (window, window.sample(frac=1.0, random_state=5))
    ]
    assert np.array_equal(updates[0].predict(one_day), updates[1].predict(one_day))


def test_updating_a_model_in_memory_equals_updating_it_read_back_from_its_artifact(
    small_model: ModelArtifact, market: pd.DataFrame, one_day: pd.DataFrame
) -> None:
    """Given a child just updated in memory and the same child read back from its artifact's bytes (as the
    next day's job reads it), when each is updated again on the same window, then the grandchildren predict
    identically (an in-memory booster carries training state its model file does not)."""
    child = training.update(small_model, market[market["date_id"].between(2, 5)], guard_days=0).model
    stored = ModelArtifact.from_bytes(*child.to_bytes())
    window = market[market["date_id"].between(3, 6)]
    in_memory, read_back = (training.update(m, window, guard_days=0).model for m in (child, stored))
    assert np.array_equal(in_memory.predict(one_day), read_back.predict(one_day))
