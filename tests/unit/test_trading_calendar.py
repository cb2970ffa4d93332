"""The layer's XNAS calendar: its data file matches `exchange-calendars`, and date_id k is the k-th session."""

from __future__ import annotations

import datetime as dt

import pytest

from closecast.trading_calendar import CalendarError, xnas
from closecast_tools.calendar import data_lines, data_path, render

pytestmark = pytest.mark.unit

FIRST = dt.date(2023, 1, 3)


def test_the_data_file_matches_the_exchange_calendars_library() -> None:
    """Given the committed data file, when exchange-calendars' XNAS sessions are rendered again, then the two
    agree line for line (regenerate with `closecast calendar --write`)."""
    assert data_lines(data_path().read_text()) == data_lines(render())


def test_the_layer_calendar_has_exactly_the_library_sessions() -> None:
    """Given the layer's calendar, then its sessions from 2000 on are exactly exchange-calendars' XNAS sessions."""
    import exchange_calendars

    calendar = xnas()
    library = exchange_calendars.get_calendar("XNAS", start="2000-01-03", end=calendar.last.isoformat())
    expected = tuple(d.date() for d in library.sessions_in_range("2000-01-03", calendar.last.isoformat()))
    assert calendar.sessions_from(dt.date(2000, 1, 3)) == expected


def test_date_id_k_is_the_kth_session_from_the_first_trading_date() -> None:
    """Given the first trading date 2023-01-03, then date_id 0 is that day, 4 skips the weekend, 9 skips
    Martin Luther King Day (2023-01-16), and a date_id past the calendar's range has no date."""
    calendar = xnas()
    assert calendar.date_of(FIRST, 0) == FIRST
    assert calendar.date_of(FIRST, 4) == dt.date(2023, 1, 9)
    assert calendar.date_of(FIRST, 8) == dt.date(2023, 1, 13)
    assert calendar.date_of(FIRST, 9) == dt.date(2023, 1, 17)
    assert calendar.date_of(FIRST, 10**6) is None


@pytest.mark.parametrize("day", [dt.date(2023, 1, 7), dt.date(2023, 7, 4), dt.date(1999, 1, 4)])
def test_a_first_trading_date_that_is_not_a_session_is_refused(day: dt.date) -> None:
    """Given a Saturday, a holiday or a day outside the file's range as the first trading date, then it is
    refused naming the day."""
    with pytest.raises(CalendarError, match=day.isoformat()):
        xnas().sessions_from(day)
