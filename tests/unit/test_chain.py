"""When a day is complete enough to learn from: the rule the ingest and the schedule apply before a chain."""

from __future__ import annotations

import pytest

from closecast.chain import DayCompleteness

pytestmark = pytest.mark.unit


def test_a_day_whose_every_row_has_its_target_is_complete() -> None:
    """Given 11000 rows, each with its target, and 11000 revealed targets, then the day is complete."""
    day = DayCompleteness(5, n_rows=11000, n_with_target=11000, n_revealed=11000)
    assert day.complete and day.reason() == "complete"


def test_a_day_with_rows_still_waiting_for_targets_is_not_complete() -> None:
    """Given 11000 rows of which 200 have no target yet, then the day is not complete and says how many."""
    day = DayCompleteness(5, n_rows=11000, n_with_target=10800, n_revealed=10800)
    assert not day.complete and day.reason() == "200 of 11000 rows have no target yet"


def test_targets_for_rows_that_never_arrived_mean_the_day_is_missing_rows() -> None:
    """Given 10994 rows all with targets but 11000 revealed targets, then the day is not complete: rows are
    missing (a chain would learn from a partial day)."""
    day = DayCompleteness(5, n_rows=10994, n_with_target=10994, n_revealed=11000)
    assert not day.complete and day.reason() == "11000 targets for 10994 rows: rows are missing"


def test_a_day_without_rows_is_not_complete() -> None:
    """Given targets only, then the day is not complete."""
    assert not DayCompleteness(5, n_rows=0, n_with_target=0, n_revealed=3).complete
