"""The streaming predictor's arithmetic: snapshot by snapshot it gives exactly the batch predictions, flags
what it predicted without earlier rows, and a snapshot delivered twice gives the same rows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from closecast.ingest import StreamRecord
from closecast_ml import live as live_module
from closecast_ml.live import Champion, ChampionCache, LivePredictor, handle_batch
from closecast_ml.model import ModelArtifact


class FixedChampion:
    """The registry's answer, fixed: always this model (the real lookup is covered end to end)."""

    def __init__(self, model_id: int, artifact: ModelArtifact) -> None:
        self.current = Champion(model_id, artifact)

    def named(self) -> bool:
        return True

    def get(self) -> Champion:
        return self.current


class EmptyDatabase:
    """A database that holds none of the day's earlier rows (they are late)."""

    def __init__(self) -> None:
        self.reads: list[dict[str, Any]] = []

    def query(self, sql: str, params: dict[str, Any], **_: Any) -> list[dict[str, Any]]:
        self.reads.append(params)
        return []


def records_of(day: pd.DataFrame) -> list[StreamRecord]:
    """One envelope record per snapshot, as `closecast replay --shape envelope` sends them."""
    columns = [c for c in day.columns if c not in ("target", "oracle")]
    out = []
    for n, (_, snap) in enumerate(day.groupby("seconds_in_bucket", sort=True)):
        # full precision (pandas' to_json keeps 10 digits, which can move a value across a tree split)
        rows = [
            {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
            for row in snap[columns].to_dict(orient="records")
        ]
        out.append(StreamRecord(str(n), "p", json.dumps({"data": rows}).encode()))
    return out


def predictor(model: ModelArtifact) -> tuple[LivePredictor, EmptyDatabase]:
    db = EmptyDatabase()
    return LivePredictor(db, FixedChampion(7, model)), db  # type: ignore[arg-type]


def live_values(rows: list[dict[str, Any]]) -> pd.Series:
    frame = pd.DataFrame(rows)
    return frame.set_index(["seconds_in_bucket", "stock_id"])["value"].sort_index()


def test_live_predictions_equal_the_batch_predictions_of_the_same_day(
    one_day: pd.DataFrame, small_model: ModelArtifact
) -> None:
    """Given a day streamed snapshot by snapshot, in batches of 7 records, when the predictor predicts each
    snapshot with the day's earlier ones, then every row's value equals the model's whole-day prediction (centred
    at each second, as served) to 1e-9 and none is flagged partial."""
    live, db = predictor(small_model)
    records = records_of(one_day)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), 7):
        batch_rows, messages = live.predict(live.snapshots_of(records[start : start + 7]))
        rows.extend(batch_rows)
        assert len(messages) == len(records[start : start + 7])
    batch = pd.Series(
        small_model.predict(one_day.drop(columns=["target"]), center=True),
        index=pd.MultiIndex.from_frame(one_day[["seconds_in_bucket", "stock_id"]]),
    ).sort_index()
    got = live_values(rows)
    assert len(got) == len(one_day)
    np.testing.assert_allclose(got.to_numpy(), batch.to_numpy(), rtol=0, atol=1e-9)
    assert not any(r["partial"] for r in rows) and db.reads == []


def test_a_snapshot_whose_earlier_rows_are_missing_is_predicted_and_flagged(
    one_day: pd.DataFrame, small_model: ModelArtifact
) -> None:
    """Given a day whose snapshot at 50 s never arrives (nor is in the database), when the later snapshots are
    predicted, then each is still predicted, flagged partial with one missing earlier snapshot, the database
    was asked once for it, and the snapshots before it are not flagged."""
    live, db = predictor(small_model)
    records = [r for n, r in enumerate(records_of(one_day)) if n != 5]
    rows, _ = live.predict(live.snapshots_of(records))
    frame = pd.DataFrame(rows)
    assert len(frame) == len(one_day) - (one_day["seconds_in_bucket"] == 50).sum()
    assert not frame[frame["seconds_in_bucket"] < 50]["partial"].any()
    later = frame[frame["seconds_in_bucket"] > 50]
    assert later["partial"].all() and (later["missing_before"] == 1).all()
    assert len(db.reads) == 1 and db.reads[0]["seconds"] == "{50}"


def test_a_replayed_snapshot_gives_the_same_rows(one_day: pd.DataFrame, small_model: ModelArtifact) -> None:
    """Given a day already predicted, when its snapshot at 100 s is delivered again, then the rows produced are
    the same keys and values as the first time (the table's upsert then changes nothing)."""
    live, _ = predictor(small_model)
    records = records_of(one_day)
    first, _ = live.predict(live.snapshots_of(records))
    again, _ = live.predict(live.snapshots_of([records[10]]))
    before = [r for r in first if r["seconds_in_bucket"] == 100]
    assert again == before


def test_a_cold_start_reads_the_earlier_snapshots_from_the_database(
    one_day: pd.DataFrame, small_model: ModelArtifact
) -> None:
    """Given a fresh predictor (a new sandbox) whose first record is the day's snapshot at 300 s, and a
    database holding the day's earlier rows, then that snapshot's predictions equal the batch ones and are not
    flagged."""

    class Database(EmptyDatabase):
        def query(self, sql: str, params: dict[str, Any], **_: Any) -> list[dict[str, Any]]:
            self.reads.append(params)
            earlier = one_day[one_day["seconds_in_bucket"] < 300].drop(columns=["target"])
            return list(earlier.to_dict(orient="records"))

    live = LivePredictor(Database(), FixedChampion(7, small_model))  # type: ignore[arg-type]
    rows, _ = live.predict(live.snapshots_of([records_of(one_day)[30]]))
    expected = small_model.predict(one_day.drop(columns=["target"]), center=True)[
        one_day["seconds_in_bucket"].to_numpy() == 300
    ]
    got = live_values(rows).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert not any(r["partial"] for r in rows)


def test_compute_per_snapshot_is_reported(one_day: pd.DataFrame, small_model: ModelArtifact) -> None:
    """Given a predicted day, then the predictor accounts its feature and model time (the benchmark reads it)."""
    live, _ = predictor(small_model)
    live.predict(live.snapshots_of(records_of(one_day)))
    assert live.snapshots_predicted == 55 and live.timings["features"] > 0 and live.timings["predict"] > 0


def test_a_second_split_across_batches_is_predicted_as_a_whole(
    one_day: pd.DataFrame, small_model: ModelArtifact
) -> None:
    """Given the day's snapshots as envelopes, except second 300 whose stocks come in two records of two
    batches (as a replay of one record per row splits a second), when the predictor predicts them in order,
    then the second's last predictions cover every stock and equal the whole-day centred predictions to 1e-9
    (the cross-section and the centring use the whole second, not the piece)."""
    live, _ = predictor(small_model)
    records = records_of(one_day)
    split = one_day[one_day["seconds_in_bucket"] == 300]
    halves = [split.iloc[: len(split) // 3], split.iloc[len(split) // 3 :]]
    for record in records[:30]:
        live.predict(live.snapshots_of([record]))
    first, _ = live.predict(live.snapshots_of(records_of(halves[0])))
    second, _ = live.predict(live.snapshots_of(records_of(halves[1])))
    assert len(first) == len(halves[0]) and len(second) == len(split)
    expected = pd.Series(
        small_model.predict(one_day.drop(columns=["target"]), center=True),
        index=pd.MultiIndex.from_frame(one_day[["seconds_in_bucket", "stock_id"]]),
    ).sort_index()
    got = live_values(second)
    np.testing.assert_allclose(got.to_numpy(), expected.loc[got.index].to_numpy(), rtol=0, atol=1e-9)


class Registry:
    """The Data API as the champion lookup sees it: `champion_id` is the champion named (None: none yet), and
    no model of the registry loads."""

    def __init__(self, champion_id: int | None) -> None:
        self.champion_id = champion_id
        self.statements: list[str] = []

    def execute(self, sql: str, params: dict[str, Any], **_: Any) -> Any:
        self.statements.append(sql)
        named = "FROM champion" in sql and self.champion_id is not None
        records = [{"name": params.get("name"), "model_id": self.champion_id}] if named else []
        return type("Result", (), {"records": records})()


def unloadable(record: dict[str, Any]) -> ModelArtifact:
    raise AssertionError("no model is loaded in these tests")


def test_before_any_champion_the_batch_is_acknowledged_without_reading_its_records(
    one_day: pd.DataFrame, monkeypatch: Any
) -> None:
    """Given a registry that names no champion yet, when a batch of snapshots arrives, then it is acknowledged
    (nothing to predict, nothing to redeliver) after one champion lookup, and no record is parsed."""
    registry = Registry(champion_id=None)
    live = LivePredictor(registry, ChampionCache(registry, "champion", unloadable))  # type: ignore[arg-type]
    parsed: list[StreamRecord] = []
    monkeypatch.setattr(live_module, "parse", lambda record: parsed.append(record))
    result = handle_batch(live, records_of(one_day))
    assert (result.snapshots, result.predictions, result.failed) == (0, 0, False)
    assert parsed == [] and len(registry.statements) == 1


def test_a_batch_without_snapshots_needs_no_usable_model(one_day: pd.DataFrame) -> None:
    """Given a champion named whose model cannot be loaded, when a batch holds only revealed targets, then it
    is acknowledged (there is nothing to predict), not sent back for want of a model."""
    registry = Registry(champion_id=5)
    live = LivePredictor(registry, ChampionCache(registry, "champion", unloadable))  # type: ignore[arg-type]
    targets = [{"date_id": 7, "seconds_in_bucket": 0, "stock_id": 1, "target": 1.5}]
    record = StreamRecord("1", "t", json.dumps({"revealed_targets": targets}).encode())
    result = handle_batch(live, [record])
    assert (result.snapshots, result.predictions) == (0, 0)
