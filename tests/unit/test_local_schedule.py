"""The local cloud's schedules: EventBridge's `rate` and `cron` expressions, read from template.yaml and run at
their due times (UTC), with an asynchronous invocation's retries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from closecast_tools.local.cloud import CloudOptions, LocalCloud
from closecast_tools.local.runtime import InvokeResult
from closecast_tools.local.schedule import ScheduleError, ScheduleRunner, parse_schedule
from closecast_tools.local.template import Template, TemplateError, resolve

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


def test_a_schedule_that_never_fires_again_has_no_next_run_and_a_far_year_is_found() -> None:
    assert parse_schedule("cron(0 0 1 1 ? 1999)").next_after(at("2026-01-01T00:00")) is None
    assert parse_schedule("cron(0 0 1 1 ? 2150)").next_after(at("2026-01-01T00:00")) == at("2150-01-01T00:00")


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


def runner(invoke: Any, now: Any = None, **options: Any) -> ScheduleRunner:
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
        retry_delays_s=options.pop("retry_delays_s", (0.05, 0.1)),
        **options,
    )


def test_a_failed_run_is_retried_as_an_asynchronous_invocation_is() -> None:
    """Given a function failing once, when a run fires, then it is invoked again after the first retry delay
    with the same scheduled event and the run counts as a success; failing every attempt, it is given up after
    one attempt per delay plus one and the error is kept. The default delays are Lambda's: 1 and 2 minutes."""
    assert ScheduleRunner.__init__.__kwdefaults__["retry_delays_s"] == (60.0, 120.0)
    flaky = Flaky(failures=1)
    started = datetime.now(UTC)
    assert runner(flaky).fire(at("2026-11-27T21:30"))
    assert datetime.now(UTC) - started >= timedelta(seconds=0.05)
    assert len(flaky.events) == 2 and flaky.events[0] == flaky.events[1]
    event = flaky.events[0]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2026-11-27T21:30:00Z" and event["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/test"
    ]
    down = Flaky(failures=99)
    hopeless = runner(down)
    assert not hopeless.fire(at("2026-11-27T21:30"))
    assert len(down.events) == 3
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


def test_a_run_found_late_after_a_sleep_is_skipped_not_made_up() -> None:
    """Given a clock that jumps ten minutes past the due time (the machine slept), when the runner runs, then
    nothing fires for the missed run and the next run is Monday's."""
    times = iter([at("2026-11-27T21:29:59"), at("2026-11-27T21:29:59")])
    late = at("2026-11-27T21:40")
    fired = Flaky(failures=0)
    scheduled = runner(fired, now=lambda: next(times, late))
    thread = threading.Thread(target=scheduled.run, daemon=True)
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while scheduled.stats.next_run != at("2026-11-30T21:30").isoformat() and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    scheduled.stop.set()
    thread.join(timeout=5)
    assert fired.events == []
    assert scheduled.stats.next_run == at("2026-11-30T21:30").isoformat()


def test_an_events_input_is_sent_instead_of_the_scheduled_event() -> None:
    fired = Flaky(failures=0)
    assert runner(fired, payload={"mode": "sweep"}).fire(at("2026-11-27T21:30"))
    assert fired.events == [{"mode": "sweep"}]


TEMPLATE = """
Parameters:
  Every: {Type: String, Default: "rate(5 minutes)"}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn/
      Handler: app.handler
      Runtime: python3.12
      Events:
%s
"""


def cloud_with(tmp_path: Path, events: str) -> LocalCloud:
    (tmp_path / "template.yaml").write_text(TEMPLATE % events)
    return LocalCloud(CloudOptions(root=tmp_path, state_dir=tmp_path / "state", schedules=False))


def test_the_templates_schedule_events_are_read_as_sam_writes_them(tmp_path: Path) -> None:
    """Given schedule events enabled, disabled (`Enabled: false`, a parameter's "false", `State: DISABLED`)
    and with an `Input`, when the local cloud reads them, then it keeps a runner for each enabled one, named by
    its event, with its expression resolved and its input as payload; with schedules off none fires."""
    events = """\
        Often: {Type: Schedule, Properties: {Schedule: !Ref Every}}
        Off: {Type: Schedule, Properties: {Schedule: "rate(1 day)", Enabled: false}}
        OffByText: {Type: Schedule, Properties: {Schedule: "rate(1 day)", Enabled: "false"}}
        Disabled: {Type: Schedule, Properties: {Schedule: "rate(1 day)", State: DISABLED}}
        WithInput: {Type: Schedule, Properties: {Schedule: "cron(0 6 ? * MON *)", Input: '{"mode": "x"}'}}"""
    cloud = cloud_with(tmp_path, events)
    cloud._start_schedules()
    assert {(r.name, r.schedule.expression, str(r.payload)) for r in cloud.schedules} == {
        ("Often", "rate(5 minutes)", "None"),
        ("WithInput", "cron(0 6 ? * MON *)", "{'mode': 'x'}"),
    }
    assert cloud.threads == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ('Bad: {Type: Schedule, Properties: {Schedule: "cron(0 6 * * * *)"}}', "Fn event Bad: .*exactly one"),
        ('Bad: {Type: Schedule, Properties: {Schedule: "rate(1 day)", Input: "{oops"}}', "Fn event Bad"),
        (
            'Bad: {Type: Schedule, Properties: {Schedule: "rate(1 day)", RetryPolicy: {MaximumRetryAttempts: 0}}}',
            "does not run RetryPolicy",
        ),
    ],
)
def test_a_schedule_event_it_cannot_run_as_written_stops_the_start(
    tmp_path: Path, event: str, reason: str
) -> None:
    """Given an expression, an Input or a setting the local cloud cannot honour, then starting names the event
    and the reason instead of running it otherwise."""
    cloud = cloud_with(tmp_path, "        " + event)
    with pytest.raises(TemplateError, match=reason):
        cloud._start_schedules()
