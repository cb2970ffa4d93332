"""The local function runtime: warm worker processes that behave like Lambda sandboxes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from closecast_tools.local.runtime import FunctionConfig, FunctionRuntime, encode_request
from closecast_tools.local.template import Template

pytestmark = pytest.mark.integration

HANDLERS = textwrap.dedent(
    """
    import os, time
    COLD = {"n": 0}

    def echo(event, context):
        COLD["n"] += 1
        print("a line printed by the handler goes to the log, not the protocol")
        return {"event": event, "stage": os.environ.get("STAGE"), "calls": COLD["n"],
                "request_id": context.aws_request_id, "remaining_ok": context.get_remaining_time_in_millis() > 0}

    def slow(event, context):
        time.sleep(5)

    def boom(event, context):
        raise ValueError("bad value")
    """
)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[FunctionRuntime]:
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text(HANDLERS)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "app.py").write_text("import not_a_module_anywhere\n")

    def config(name: str, handler: str, code_dir: Path = code, timeout: int = 3) -> FunctionConfig:
        return FunctionConfig(name, code_dir, handler, timeout, 128, {"STAGE": name})

    functions = {
        "Echo": config("Echo", "app.echo"),
        "Slow": config("Slow", "app.slow", timeout=1),
        "Boom": config("Boom", "app.boom"),
        "Broken": config("Broken", "app.handler", tmp_path / "broken"),
    }
    rt = FunctionRuntime(functions, tmp_path / "logs", max_instances=1)
    yield rt
    rt.close()


def test_a_warm_instance_keeps_its_state_and_its_own_environment(runtime: FunctionRuntime) -> None:
    """Given a function invoked twice, then the second call reuses the warm process (module state kept), sees
    the environment the template gave it, and printed output does not disturb the answer."""
    first = runtime.invoke("Echo", {"a": 1})
    second = runtime.invoke("Echo", {"a": 2})
    assert first.ok and second.ok
    assert first.payload["calls"] == 1 and second.payload["calls"] == 2
    assert second.payload["event"] == {"a": 2} and second.payload["stage"] == "Echo"
    assert second.payload["remaining_ok"] is True
    assert "printed by the handler" in runtime.log_path("Echo").read_text()


def test_an_event_reaches_the_handler_as_json_carries_it(runtime: FunctionRuntime) -> None:
    """Given events of JSON's own types (a Kinesis batch of megabytes of base64 text, non-ASCII text, a lone
    surrogate, infinities, integer-valued floats) and one that holds what JSON cannot (a datetime, a tuple),
    when each is invoked, then the handler gets `json.loads(json.dumps(event, default=str))`: the values the
    standard library's encoding gave it."""
    data = base64.b64encode(bytes(range(256)) * 4_000).decode()
    kinesis = {"Records": [{"kinesis": {"data": data, "sequenceNumber": str(n)}, "n": n} for n in range(6)]}
    events: list[Any] = [
        kinesis,
        {"text": 'prix à la clôture \u2028 \\ "', "lone": "\ud800", "nested": [[{}], [], None, True, 0]},
        {"numbers": [float("inf"), -float("inf"), 1.0, 1e16, 2.5e-308, -0.0, 10**30]},
        {"when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "pair": (1, "a")},
    ]
    for event in events:
        result = runtime.invoke("Echo", event)
        assert result.ok
        assert result.payload["event"] == json.loads(json.dumps(event, default=str))
    as_before = json.dumps(events[3], default=str).encode()
    assert encode_request(events[3]) == as_before  # byte for byte


def test_a_function_past_its_timeout_is_stopped(runtime: FunctionRuntime) -> None:
    """Given a 1 s timeout and a handler that sleeps 5 s, then the invocation fails as Sandbox.Timedout, and
    the next invocation gets a fresh instance."""
    result = runtime.invoke("Slow", {})
    assert (result.ok, result.error_type) == (False, "Sandbox.Timedout")
    assert result.duration_ms < 4000


def test_handler_errors_and_import_errors_are_reported_like_lambda(runtime: FunctionRuntime) -> None:
    """Given a handler that raises and a module that cannot import, then each invocation fails with the error
    type and message, and the runtime keeps serving other functions."""
    boom = runtime.invoke("Boom", {})
    assert (boom.error_type, boom.error_message) == ("ValueError", "bad value")
    broken = runtime.invoke("Broken", {})
    assert broken.error_type == "Runtime.ImportModuleError"
    assert runtime.invoke("Echo", {}).ok


def test_image_functions_take_their_code_and_handler_from_the_image_settings(tmp_path: Path) -> None:
    """Given an image function (PackageType Image, Metadata DockerContext, ImageConfig Command), then the local
    cloud runs the handler from the Docker context, as it runs zip functions from CodeUri."""
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """
            Transform: AWS::Serverless-2016-10-31
            Resources:
              TrainFunction:
                Type: AWS::Serverless::Function
                Properties:
                  PackageType: Image
                  ImageConfig: {Command: ["app.train"]}
                  Timeout: 900
                Metadata: {Dockerfile: Dockerfile, DockerContext: ./functions/train, DockerTag: python3.12}
            """
        )
    )
    spec = Template(tmp_path / "template.yaml").functions["TrainFunction"]
    assert (spec.package_type, spec.code_dir, spec.handler, spec.timeout) == (
        "Image",
        "./functions/train",
        "app.train",
        900,
    )


def test_a_worker_outlives_the_thread_that_started_it(runtime: FunctionRuntime) -> None:
    """Given a function first invoked from a short-lived thread (as each gateway request is), when that thread
    has ended, then the next invocation finds the same warm instance alive."""
    import threading

    first: list[object] = []
    thread = threading.Thread(target=lambda: first.append(runtime.invoke("Echo", {})))
    thread.start()
    thread.join()
    second = runtime.invoke("Echo", {})
    assert second.ok, second.error_message
    assert second.payload["calls"] == 2
