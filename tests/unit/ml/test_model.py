"""Model artifacts: XGBoost's own format plus metadata JSON, round trips, corruption, centring."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Iterator

import boto3
import numpy as np
import pandas as pd
import pytest

from closecast_ml.model import ArtifactError, ModelArtifact, center_predictions
from closecast_ml.targets import load_index_weights

pytestmark = pytest.mark.unit


def test_artifact_round_trips_through_bytes_and_predicts_the_same_numbers(
    small_model: ModelArtifact, one_day: pd.DataFrame
) -> None:
    """Given a fitted model, when it goes to bytes and back, then it predicts exactly the same numbers and has
    the same metadata; the metadata file also carries the model file's sha256, which is checked on load."""
    model_bytes, metadata = small_model.to_bytes()
    again = ModelArtifact.from_bytes(model_bytes, metadata)
    assert np.array_equal(again.predict(one_day), small_model.predict(one_day))
    assert again.metadata == small_model.metadata
    assert json.loads(metadata) == {
        **small_model.metadata,
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
    }


def test_model_file_is_xgboost_ubjson_and_metadata_is_json_not_pickle(small_model: ModelArtifact) -> None:
    """Given a model's bytes, then the model is UBJSON (starts with '{') and the metadata plain JSON with the
    contract's keys."""
    model_bytes, metadata = small_model.to_bytes()
    assert model_bytes[:1] == b"{" and not model_bytes.startswith(b"\x80")
    meta = json.loads(metadata)
    for key in ("format_version", "feature_set", "features", "params", "n_rounds", "days_trained",
                "day_versions", "valid_metrics", "parent", "library_versions", "stats", "created_at"):  # fmt: skip
        assert key in meta, key
    assert meta["feature_set"] == "full" and meta["parent"] is None
    assert meta["valid_metrics"]["days"] == [5] and meta["days_trained"] == [0, 1, 2, 3, 4]


def test_predict_needs_no_target_column(small_model: ModelArtifact, one_day: pd.DataFrame) -> None:
    """Given a day's rows without `target`, when predicted, then every row gets a finite prediction."""
    predictions = small_model.predict(one_day.drop(columns=["target"]))
    assert len(predictions) == len(one_day) and np.isfinite(predictions).all()


def test_centred_predictions_have_zero_index_weighted_mean_at_each_second(
    small_model: ModelArtifact, one_day: pd.DataFrame
) -> None:
    """Given a day, when predicted with center=True, then at every second the index-weighted mean is zero."""
    centred = small_model.predict(one_day, center=True)
    weights = load_index_weights().to_numpy()[one_day["stock_id"].to_numpy()]
    frame = pd.DataFrame({"s": one_day["seconds_in_bucket"], "wp": weights * centred, "w": weights})
    sums = frame.groupby("s")[["wp", "w"]].sum()
    np.testing.assert_allclose(sums["wp"] / sums["w"], 0.0, atol=1e-9)
    assert not np.allclose(centred, small_model.predict(one_day))


def test_centring_subtracts_the_weighted_mean() -> None:
    """Given two stocks at one second with weights w0, w1, then each loses the weighted mean."""
    rows = pd.DataFrame({"date_id": [0, 0], "seconds_in_bucket": [0, 0], "stock_id": [0, 1]})
    w = load_index_weights().to_numpy()[:2]
    mean = (w[0] * 1.0 + w[1] * 3.0) / w.sum()
    np.testing.assert_allclose(center_predictions(rows, np.array([1.0, 3.0])), [1.0 - mean, 3.0 - mean])


def test_a_non_finite_prediction_does_not_spoil_its_seconds_centring() -> None:
    """Given three stocks at one second, one predicted NaN, when centred, then the other two lose their own
    weighted mean and the NaN stays NaN alone."""
    rows = pd.DataFrame({"date_id": [0, 0, 0], "seconds_in_bucket": [0, 0, 0], "stock_id": [0, 1, 2]})
    w = load_index_weights().to_numpy()[:2]
    mean = (w[0] * 1.0 + w[1] * 3.0) / w.sum()
    centred = center_predictions(rows, np.array([1.0, 3.0, np.nan]))
    np.testing.assert_allclose(centred[:2], [1.0 - mean, 3.0 - mean])
    assert np.isnan(centred[2])


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b"not a model at all",
        lambda b: b"",
        lambda b: bytes(x ^ 0x5A for x in b[:200]) + b[200:],
    ],
    ids=["truncated", "garbage", "empty", "scrambled-head"],
)
def test_a_corrupt_model_file_raises_artifact_error(small_model: ModelArtifact, damage) -> None:  # type: ignore[no-untyped-def]
    """Given a model file that was damaged, when loaded, then ArtifactError says the model is unreadable."""
    model_bytes, metadata = small_model.to_bytes()
    with pytest.raises(ArtifactError, match="model file"):
        ModelArtifact.from_bytes(damage(model_bytes), metadata)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: b"{not json", "not valid JSON"),
        (lambda m: json.dumps([1, 2]).encode(), "not a JSON object"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "features"}).encode(), "lacks features"),
        (lambda m: json.dumps({**m, "format_version": 99}).encode(), "format_version"),
        (lambda m: json.dumps({**m, "feature_set": "fancy"}).encode(), "unknown"),
        (lambda m: json.dumps({**m, "features": m["features"][:-1]}).encode(), "columns differ"),
        (lambda m: json.dumps({**m, "n_rounds": m["n_rounds"] + 1}).encode(), "boosting rounds"),
    ],
    ids=["not-json", "not-object", "missing-key", "format", "feature-set", "features", "rounds"],
)
def test_bad_or_mismatched_metadata_raises_artifact_error(
    small_model: ModelArtifact, edit, message: str
) -> None:  # type: ignore[no-untyped-def]
    """Given metadata that is unreadable or belongs to another model, when loaded, then ArtifactError."""
    model_bytes, metadata = small_model.to_bytes()
    with pytest.raises(ArtifactError, match=message):
        ModelArtifact.from_bytes(model_bytes, edit(json.loads(metadata)))


def test_model_and_metadata_of_different_feature_sets_are_refused(
    small_model: ModelArtifact, market: pd.DataFrame
) -> None:
    """Given the model file of a `seed` model and the metadata of a `full` one, then ArtifactError: by the
    model file's checksum, and by the feature count where the metadata carries no checksum (older artifacts)."""
    import json

    from closecast_ml import training

    seed = training.fit(market[market["date_id"] <= 2], feature_set="seed", valid_days=0, n_rounds=5)
    with pytest.raises(ArtifactError, match="checksum"):
        ModelArtifact.from_bytes(seed.to_bytes()[0], small_model.to_bytes()[1])
    older = json.loads(small_model.to_bytes()[1])
    del older["model_sha256"]
    with pytest.raises(ArtifactError, match="features"):
        ModelArtifact.from_bytes(seed.to_bytes()[0], json.dumps(older).encode())


def test_a_damaged_model_file_is_refused_by_its_checksum_before_xgboost_reads_it(
    small_model: ModelArtifact,
) -> None:
    """Given a model file with one byte flipped in its middle, then ArtifactError names the checksum."""
    model_bytes, metadata = small_model.to_bytes()
    middle = len(model_bytes) // 2
    damaged = model_bytes[:middle] + bytes([model_bytes[middle] ^ 0xFF]) + model_bytes[middle + 1 :]
    with pytest.raises(ArtifactError, match="checksum"):
        ModelArtifact.from_bytes(damaged, metadata)


def test_save_and_load_a_directory(small_model: ModelArtifact, one_day: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Given a model saved to a directory, when loaded, then it predicts the same; a missing file is named."""
    small_model.save(tmp_path / "m")
    assert np.array_equal(ModelArtifact.load(tmp_path / "m").predict(one_day), small_model.predict(one_day))
    (tmp_path / "m" / "metadata.json").unlink()
    with pytest.raises(ArtifactError, match=r"metadata\.json"):
        ModelArtifact.load(tmp_path / "m")


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
    finally:
        server.stop()


def test_artifact_round_trips_through_an_s3_bucket(
    s3, small_model: ModelArtifact, one_day: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    """Given a bucket (moto in server mode on loopback), when the model and its metadata are put and read back,
    then the model predicts the same numbers."""
    s3.create_bucket(Bucket="models")
    model_bytes, metadata = small_model.to_bytes()
    s3.put_object(Bucket="models", Key="models/m1/model.ubj", Body=model_bytes)
    s3.put_object(Bucket="models", Key="models/m1/metadata.json", Body=metadata)
    again = ModelArtifact.from_bytes(
        s3.get_object(Bucket="models", Key="models/m1/model.ubj")["Body"].read(),
        s3.get_object(Bucket="models", Key="models/m1/metadata.json")["Body"].read(),
    )
    assert np.array_equal(again.predict(one_day), small_model.predict(one_day))
