"""The local cloud's schedules: EventBridge's `rate` and `cron` expressions, read from template.yaml and run at
their due times (UTC), with an asynchronous invocation's retries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from closecast_tools.local.runtime import InvokeResult
from closecast_tools.local.schedule import ASYNC_RETRIES, ScheduleError, ScheduleRunner, parse_schedule
from closecast_tools.local.template import Template, resolve

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs(expression: str, after: str, count: int) -> list[str]:
    schedule, moment, found = parse_schedule(expression), at(after), []
    for _ in range(count):
        following = schedule.next_after(moment)
        assert following is not None
        found.append(following.strftime("%a %Y-%m-%d %H:%M"))
        moment = following
    return found


def test_the_templates_chain_sweep_runs_after_the_close_on_weekdays_only() -> None:
    """Given template.yaml's ChainSchedule default, when read as the local cloud reads it, then its runs after a
    Friday morning are Friday, Monday and Tuesday at 21:30 UTC: no weekend run."""
    template = Template(REPO / "template.yaml")
    (event,) = [e for e in template.schedules() if e.function == "ChainScheduleFunction"]
    expression = resolve(event.properties["Schedule"], lambda *_: None, template.parameter_defaults())
    assert runs(expression, "2026-11-27T09:00", 3) == [
        "Fri 2026-11-27 21:30",
        "Mon 2026-11-30 21:30",
        "Tue 2026-12-01 21:30",
    ]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0/20 9-10 * * ? *)", "2026-11-27T10:30", ["Fri 2026-11-27 10:40", "Sat 2026-11-28 09:00"]),
        ("cron(15 8 1,15 JAN,JUL ? *)", "2026-11-27T00:00", ["Fri 2027-01-01 08:15", "Fri 2027-01-15 08:15"]),
        ("cron(0 12 ? * 1 2026-2027)", "2026-11-27T00:00", ["Sun 2026-11-29 12:00", "Sun 2026-12-06 12:00"]),
        ("cron(5 0 29 2 ? *)", "2026-11-27T00:00", ["Tue 2028-02-29 00:05", "Sun 2032-02-29 00:05"]),
        ("rate(5 minutes)", "2026-11-27T10:31", ["Fri 2026-11-27 10:36", "Fri 2026-11-27 10:41"]),
        ("rate(1 day)", "2026-11-27T10:31", ["Sat 2026-11-28 10:31", "Sun 2026-11-29 10:31"]),
    ],
)
def test_expressions_fire_when_eventbridge_would(expression: str, after: str, expected: list[str]) -> None:
    """Given steps, ranges, lists, month and day names, day 1 = Sunday, leap days and rates, then the next runs
    are those EventBridge documents."""
    assert runs(expression, after, 2) == expected


def test_a_schedule_that_never_fires_again_has_no_next_run() -> None:
    assert parse_schedule("cron(0 0 1 1 ? 1999)").next_after(at("2026-01-01T00:00")) is None


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 12 L * ? *)", "L, W or #"),
        ("cron(0 12 ? * 6#3 *)", "L, W or #"),
        ("cron(0 12 15W * ? *)", "L, W or #"),
        ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 12 * * ?)", "6 fields"),
        ("cron(60 12 * * ? *)", "outside 0..59"),
        ("cron(0 12 * FOO ? *)", "not a number or a name"),
        ("cron(0 12 * * ? */0)", "positive"),
        ("cron(0 20-10 * * ? *)", "backwards"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(1 minutes)", "singular"),
        ("rate(2 weeks)", "expected rate"),
        ("at(2026-11-27T10:00:00)", "expected rate"),
    ],
)
def test_expressions_it_cannot_run_exactly_are_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason):
        parse_schedule(expression)


class Flaky:
    """A function that fails its first `failures` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.events: list[dict[str, Any]] = []

    def __call__(self, function: str, event: Any) -> InvokeResult:
        self.events.append(event)
        if len(self.events) <= self.failures:
            return InvokeResult(
                False, error_type="DatabaseUnavailable", error_message="the cluster is resuming"
            )
        return InvokeResult(True, payload={"started": []})


def runner(invoke: Any, now: Any = None) -> ScheduleRunner:
    arn = "arn:aws:events:us-east-1:123456789012:rule/test"
    extra = {"now": now} if now else {}
    return ScheduleRunner(
        "Fn",
        parse_schedule("cron(30 21 ? * MON-FRI *)"),
        invoke,
        arn,
        "us-east-1",
        "1",
        threading.Event(),
        **extra,
    )


def test_a_failed_run_is_retried_as_an_asynchronous_invocation_is() -> None:
    """Given a function failing once, when a run fires, then it is invoked again with the same scheduled event
    and the run counts as a success; failing every attempt, it is given up after 1 + ASYNC_RETRIES attempts
    and the error is kept."""
    flaky = Flaky(failures=1)
    assert runner(flaky).fire(at("2026-11-27T21:30"))
    assert len(flaky.events) == 2 and flaky.events[0] == flaky.events[1]
    event = flaky.events[0]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2026-11-27T21:30:00Z" and event["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/test"
    ]
    down = Flaky(failures=99)
    hopeless = runner(down)
    assert not hopeless.fire(at("2026-11-27T21:30"))
    assert len(down.events) == 1 + ASYNC_RETRIES
    assert hopeless.stats.failures == 1 and "resuming" in (hopeless.stats.last_error or "")


def test_the_runner_fires_at_the_due_time_and_then_waits_for_the_next() -> None:
    """Given a clock half a second before Friday's 21:30, when the runner runs, then it fires once, for 21:30,
    and then waits for Monday's run."""
    offset = at("2026-11-27T21:29:59.5") - datetime.now(UTC)
    fired = Flaky(failures=0)
    scheduled = runner(fired, now=lambda: datetime.now(UTC) + offset)
    thread = threading.Thread(target=scheduled.run, daemon=True)
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not fired.events and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    threading.Event().wait(0.3)
    scheduled.stop.set()
    thread.join(timeout=5)
    assert [event["time"] for event in fired.events] == ["2026-11-27T21:30:00Z"]
    assert scheduled.stats.next_run == at("2026-11-30T21:30").isoformat()
