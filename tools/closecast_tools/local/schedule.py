"""The template's `Schedule` events, run by the local cloud as EventBridge runs them.

An expression is either `rate(N unit)` (unit minute(s), hour(s) or day(s); the first run N units after the
start) or `cron(minutes hours day-of-month month day-of-week year)` in UTC, with EventBridge's syntax: `*`,
`?`, lists `a,b`, ranges `a-b`, steps `*/n` and `a-b/n`, months JAN..DEC or 1..12, days of week SUN..SAT or
1..7 (1 = Sunday), and exactly one of day-of-month and day-of-week set to `?`. `L`, `W` and `#` are refused
with a clear error rather than run at the wrong time.

At each due time the function gets the event EventBridge sends (`detail-type: Scheduled Event`) through the
local runtime (or the event's `Input`, which EventBridge sends instead); a failed run is retried twice, about
1 and 2 minutes later, as an asynchronous Lambda invocation is, then logged. Runs of one schedule are one at a
time: a run still going at the next due time makes that run skipped. A run missed while the cloud was stopped
or the machine slept is not made up (EventBridge does not either).
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

log = logging.getLogger("closecast.local.schedule")

# an asynchronous Lambda invocation's default: 2 retries, about 1 then 2 minutes after the failure
RETRY_DELAYS_S: tuple[float, ...] = (60.0, 120.0)
LATE_S = 60.0  # a run found this late (the machine slept, the clock jumped) is skipped, not made up
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")


class ScheduleError(ValueError):
    """A schedule expression that is malformed or uses a feature the local cloud does not run."""


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...] = ()) -> frozenset[int]:
    """The values one cron field allows (`names[i]` stands for `low + i`)."""

    def number(token: str) -> int:
        upper = token.upper()
        if upper in names:
            return low + names.index(upper)
        if not token.isdigit():
            if (
                "#" in upper
                or upper in ("L", "W", "LW")
                or (upper[:-1].isdigit() and upper[-1:] in ("L", "W"))
            ):
                raise ScheduleError(
                    f"cron {name}: {token!r} uses L, W or #, which the local cloud does not run"
                )
            raise ScheduleError(f"cron {name}: {token!r} is not a number{' or a name' if names else ''}")
        value = int(token)
        if not low <= value <= high:
            raise ScheduleError(f"cron {name}: {value} is outside {low}..{high}")
        return value

    allowed: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"cron {name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = number(start), number(end)
            if first > last:
                raise ScheduleError(f"cron {name}: range {base!r} runs backwards")
        else:
            first = number(base)
            last = high if step_text else first
        allowed.update(range(first, last + 1, step))
    return frozenset(allowed)


@dataclass(frozen=True)
class Schedule:
    expression: str
    rate: timedelta | None = None
    minutes: frozenset[int] = field(default_factory=frozenset)
    hours: frozenset[int] = field(default_factory=frozenset)
    days_of_month: frozenset[int] | None = None  # None: `?`
    months: frozenset[int] = field(default_factory=frozenset)
    days_of_week: frozenset[int] | None = None  # None: `?`; 1 = Sunday .. 7 = Saturday
    years: frozenset[int] = field(default_factory=frozenset)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first time strictly after `moment` (UTC) the schedule fires; None if it never fires again."""
        moment = moment.astimezone(UTC)
        if self.rate is not None:
            return moment + self.rate
        for year in sorted(y for y in self.years if y >= moment.year):
            day = max(moment.date(), date(year, 1, 1))
            while day.year == year:
                if self._day_matches(day):
                    for hour in sorted(self.hours):
                        for minute in sorted(self.minutes):
                            when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                            if when > moment:
                                return when
                day += timedelta(days=1)
        return None

    def _day_matches(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        assert self.days_of_week is not None
        return (day.isoweekday() % 7) + 1 in self.days_of_week  # Monday (isoweekday 1) is 2


def parse_schedule(expression: str) -> Schedule:
    """A `rate(...)` or `cron(...)` expression as EventBridge reads it (see the module's docstring)."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        count, unit = int(rate.group(1)), rate.group(2)
        if count == 0:
            raise ScheduleError(f"{expression!r}: a rate must be at least 1")
        if (count == 1) != (not unit.endswith("s")):
            raise ScheduleError(f"{expression!r}: use the singular unit for 1 and the plural otherwise")
        seconds = {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
        return Schedule(text, rate=timedelta(seconds=count * seconds))
    cron = _CRON.match(text)
    if not cron:
        raise ScheduleError(f"{expression!r}: expected rate(N unit) or cron(6 fields)")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"{expression!r}: a cron expression has 6 fields, not {len(fields)}")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
    return Schedule(
        text,
        minutes=_field(minutes, "minutes", 0, 59),
        hours=_field(hours, "hours", 0, 23),
        days_of_month=None if dom == "?" else _field(dom, "day-of-month", 1, 31),
        months=_field(month, "month", 1, 12, _MONTHS),
        days_of_week=None if dow == "?" else _field(dow, "day-of-week", 1, 7, _DAYS),
        years=_field(year, "year", 1970, 2199),
    )


def scheduled_event(rule_arn: str, when: datetime, region: str, account: str) -> dict[str, Any]:
    """The event EventBridge sends a function for one run of a schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass
class ScheduleStats:
    runs: int = 0
    failures: int = 0
    last_run: str | None = None
    last_error: str | None = None
    next_run: str | None = None


class ScheduleRunner:
    """Runs one function on one schedule until `stop` is set. `invoke(function, event)` answers an object with
    `ok`, `error_type` and `error_message` (the local runtime's `InvokeResult`)."""

    def __init__(
        self,
        function: str,
        schedule: Schedule,
        invoke: Callable[[str, Any], Any],
        rule_arn: str,
        region: str,
        account: str,
        stop: threading.Event,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        name: str = "",
        payload: Any = None,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self.function = function
        self.name = name  # the template's event name
        self.payload = payload  # the event's `Input`, sent instead of the scheduled event
        self.retry_delays_s = tuple(retry_delays_s)
        self.schedule = schedule
        self.invoke = invoke
        self.rule_arn = rule_arn
        self.region = region
        self.account = account
        self.stop = stop
        self.now = now
        self.stats = ScheduleStats()
        first = schedule.next_after(now())
        self.stats.next_run = first.isoformat() if first else None

    def run(self) -> None:
        due = self.schedule.next_after(self.now())
        while due is not None:
            self.stats.next_run = due.isoformat()
            wait = (due - self.now()).total_seconds()
            if wait > 0 and self.stop.wait(min(wait, 60.0)):
                return
            if self.now() < due:
                continue  # woke early to re-check the clock (it may have moved)
            if self.stop.is_set():
                return
            if (self.now() - due).total_seconds() > LATE_S:
                log.warning(
                    "schedule %s: the run due at %s was missed; not made up", self.schedule.expression, due
                )
                due = self.schedule.next_after(self.now())
                continue
            self.fire(due)
            following = self.schedule.next_after(due)
            if following is not None and following <= self.now():  # due while this run ran: not made up
                following = self.schedule.next_after(self.now())
            due = following
        self.stats.next_run = None
        log.info("schedule %s of %s: no run left", self.schedule.expression, self.function)

    def fire(self, when: datetime) -> bool:
        """One run: the scheduled event (or the `Input`), retried after each of `retry_delays_s` on failure.
        True if it succeeded."""
        event = (
            scheduled_event(self.rule_arn, when, self.region, self.account)
            if self.payload is None
            else self.payload
        )
        self.stats.runs += 1
        self.stats.last_run = when.isoformat()
        attempts = len(self.retry_delays_s) + 1
        for attempt in range(attempts):
            if attempt and self.stop.wait(self.retry_delays_s[attempt - 1]):
                break
            try:
                result = self.invoke(self.function, event)
            except Exception as exc:  # the runtime itself failed: counts as a failed attempt
                error = f"{type(exc).__name__}: {exc}"
            else:
                if result.ok:
                    log.info("schedule %s ran %s for %s", self.schedule.expression, self.function, when)
                    return True
                error = f"{result.error_type}: {result.error_message}"
            log.warning(
                "schedule %s: %s failed (attempt %d of %d): %s",
                self.schedule.expression,
                self.function,
                attempt + 1,
                attempts,
                error,
            )
        self.stats.failures += 1
        self.stats.last_error = error
        return False
