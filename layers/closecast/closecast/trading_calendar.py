"""The Nasdaq (XNAS) trading calendar, for mapping date_id to a trading date without pandas.

`date_id` k is the k-th trading session counted from a configurable first trading date (k = 0 is that date).
The sessions come from a small data file generated from the `exchange-calendars` package (XNAS) by
`closecast calendar --write`: the weekdays on which Nasdaq does not trade, over the range the file covers. A test
checks that the file matches the library, so the layer needs neither it nor pandas.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from importlib import resources

DATA_FILE = "xnas_closed_weekdays.txt"


class CalendarError(ValueError):
    """A first trading date that is not a session, or outside the range the calendar covers."""


@dataclass(frozen=True)
class TradingCalendar:
    first: dt.date  # the first day the file covers
    last: dt.date  # the last day the file covers
    closed_weekdays: frozenset[dt.date]

    @classmethod
    def parse(cls, text: str) -> TradingCalendar:
        first = last = None
        closed = set()
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("range "):
                _, start, end = line.split()
                first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
            else:
                closed.add(dt.date.fromisoformat(line))
        if first is None or last is None:
            raise CalendarError("calendar file has no `range FIRST LAST` line")
        return cls(first, last, frozenset(closed))

    def is_session(self, day: dt.date) -> bool:
        return self.first <= day <= self.last and day.weekday() < 5 and day not in self.closed_weekdays

    @cache  # noqa: B019 - one calendar per process, kept for its life
    def sessions_from(self, start: dt.date) -> tuple[dt.date, ...]:
        """Every session from `start` (a session itself) to the end of the range."""
        if not self.is_session(start):
            raise CalendarError(
                f"{start.isoformat()} is not an XNAS trading session between {self.first} and {self.last}"
            )
        days = []
        day = start
        one = dt.timedelta(days=1)
        while day <= self.last:
            if day.weekday() < 5 and day not in self.closed_weekdays:
                days.append(day)
            day += one
        return tuple(days)

    def date_of(self, start: dt.date, date_id: int) -> dt.date | None:
        """The trading date of `date_id` counted from `start`, or None past the calendar's range."""
        sessions = self.sessions_from(start)
        return sessions[date_id] if 0 <= date_id < len(sessions) else None


@cache
def xnas() -> TradingCalendar:
    text = resources.files("closecast").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return TradingCalendar.parse(text)
