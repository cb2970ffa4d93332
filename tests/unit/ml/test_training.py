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
    """Given 6 days and 2 validation days, when fitted (the default), then the held-out days choose the rounds
    and the model is trained again with them on all 6 days: the same rounds as the early-stopping fit, other
    trees, and the validation figures are the early-stopping fit's."""
    rows = market[market["date_id"] <= 5]
    probe = training.fit(rows, params=SMALL, valid_days=2, n_rounds=10, final_all_days=False)
    model = training.fit(rows, params=SMALL, valid_days=2, n_rounds=10)
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
