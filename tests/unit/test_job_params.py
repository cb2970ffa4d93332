"""What a job may ask for: the parameters of POST /jobs/ and of the original's /train-model/ and
/inference-model/, validated once where the job is created and again where it runs."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter, ValidationError

from closecast.resources.jobs.schemas import (
    InferenceModelRequest,
    JobCreate,
    TrainModelRequest,
    TrainParams,
    split_create,
)

pytestmark = pytest.mark.unit

CREATE: TypeAdapter[object] = TypeAdapter(JobCreate)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"date_id": 7}, (7, 7)),
        ({"start_date_id": 3, "end_date_id": 9}, (3, 9)),
        ({"up_to_date_id": 480}, (0, 480)),
    ],
)
def test_a_train_job_selects_one_day_a_range_or_all_days_up_to_one(
    dates: dict[str, int], expected: tuple[int, int]
) -> None:
    """Given one of the three date selections, then the job's date range is that day, that range, or 0..d."""
    assert TrainParams(model_name="m", **dates).date_range() == expected


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ({}, "give date_id, start_date_id + end_date_id, or up_to_date_id"),
        ({"date_id": 1, "up_to_date_id": 5}, "give only one of"),
        ({"start_date_id": 4}, "end_date_id is required with start_date_id"),
        ({"start_date_id": 9, "end_date_id": 3}, "start_date_id must not be after end_date_id"),
    ],
)
def test_a_train_job_with_no_or_several_or_reversed_dates_is_refused(
    dates: dict[str, int], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        TrainParams(model_name="m", **dates)


def test_post_jobs_body_splits_into_kind_params_and_client_token() -> None:
    """Given a POST /jobs/ body, then the stored params are the kind's parameters alone (defaults included,
    unset options left out) and the client token travels apart."""
    body = CREATE.validate_python({"kind": "inference", "model_id": 3, "date_id": 12, "client_token": "abc"})
    assert split_create(body) == ("inference", {"model_id": 3, "date_id": 12, "center": True}, "abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "train", "model_name": "bad name!", "date_id": 1},
        {"kind": "train", "model_name": "m", "date_id": -1},
        {"kind": "inference", "model_id": 0, "date_id": 1},
        {"kind": "inference", "model_id": 1, "date_id": 1, "unknown": True},
        {"kind": "train", "model_name": "m", "date_id": 1, "client_token": ""},
        {"kind": "backtest"},
    ],
)
def test_an_invalid_job_body_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CREATE.validate_python(body)


def test_the_originals_train_model_example_becomes_a_daily_update_of_its_range() -> None:
    """Given the original's documented example (model_id, model_name, a range and a date_id inside it), then the
    job updates that parent on the range."""
    request = TrainModelRequest(
        model_id=1, model_name="new_model", start_date_id=100, end_date_id=200, date_id=150
    )
    assert request.to_params() == {
        "model_name": "new_model",
        "parent_id": 1,
        "start_date_id": 100,
        "end_date_id": 200,
    }


def test_the_originals_train_model_with_a_date_outside_its_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="date_id lies outside"):
        TrainModelRequest(model_id=1, model_name="m", start_date_id=100, end_date_id=200, date_id=250)


def test_the_originals_train_model_without_model_id_is_a_refit_of_one_day() -> None:
    assert TrainModelRequest(model_name="m", date_id=5).to_params() == {"model_name": "m", "date_id": 5}


def test_the_originals_inference_model_predicts_pred_date_id_itself() -> None:
    """Given POST /inference-model/ {"model_id", "pred_date_id"}, then the job predicts that day from its own rows
    (the original read the day before; here d is predicted from d's rows)."""
    assert InferenceModelRequest(model_id=4, pred_date_id=200).to_params() == {
        "model_id": 4,
        "date_id": 200,
        "center": True,
    }
