"""`closecast up`, `closecast invoke`, `closecast demo`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from closecast_tools.local.cloud import (
    STATE_FILE,
    CloudOptions,
    LocalCloud,
    LocalResources,
    function_config,
    function_environment,
    repo_root,
    sign_in,
    template_parameters,
)
from closecast_tools.local.runtime import FunctionRuntime
from closecast_tools.local.template import Template


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="run the whole application locally (no Docker, no AWS account)")
    _cloud_arguments(up)
    up.set_defaults(func=cmd_up)

    invoke = subparsers.add_parser(
        "invoke", help="invoke one function with an event file (like `sam local invoke`)"
    )
    invoke.add_argument("function", help="logical id (IngestFunction) or folder name (ingest)")
    invoke.add_argument("-e", "--event", type=Path, help="event JSON file (default: {})")
    invoke.add_argument("--state-dir", type=Path, default=None)
    invoke.add_argument("--database-url", default=None)
    invoke.set_defaults(func=cmd_invoke)

    demo = subparsers.add_parser(
        "demo",
        help="start the local cloud; backfill and stream a synthetic market, train and infer through jobs",
    )
    _cloud_arguments(demo)
    demo.add_argument("--days", type=int, default=30, help="days of synthetic market (default 30)")
    demo.add_argument("--stocks", type=int, default=50, help="stocks (default 50)")
    demo.add_argument(
        "--exit", action="store_true", help="stop after the demo instead of serving until Ctrl-C"
    )
    demo.set_defaults(func=cmd_demo)

    token = subparsers.add_parser(
        "token", help="sign the demo user in to the running local cloud and print a token for the HTTP API"
    )
    token.add_argument("--state-dir", type=Path, default=None, help="default: .closecast/ in the project")
    token.add_argument(
        "--kind", choices=("access", "id", "refresh"), default="access", help="which token (default: access)"
    )
    token.add_argument(
        "--username", default=None, help="another user of the local pool (default: the demo user)"
    )
    token.add_argument("--password", default=None)
    token.set_defaults(func=cmd_token)


def _cloud_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None, help="default: .closecast/ in the project")
    parser.add_argument(
        "--database-url", default=None, help="use this PostgreSQL instead of the embedded one"
    )
    parser.add_argument("--port", type=int, default=0, help="HTTP API port (default: a free one)")
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve every route without a token (for token-less clients such as the original's)",
    )
    parser.add_argument(
        "--no-schedules",
        action="store_true",
        help="never fire the template's Schedule events (the daily chain's 21:30 UTC sweep)",
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="template parameters, as `sam deploy --parameter-overrides` takes them",
    )


def _options(args: argparse.Namespace, *, pollers: bool = True) -> CloudOptions:
    root = repo_root()
    return CloudOptions(
        root=root,
        state_dir=(args.state_dir or root / ".closecast").resolve(),
        database_url=args.database_url,
        api_port=getattr(args, "port", 0),
        pollers=pollers,
        auth=not getattr(args, "no_auth", False),
        schedules=not getattr(args, "no_schedules", False),
        parameter_overrides=parse_overrides(getattr(args, "parameter_overrides", [])),
    )


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`Name=Value` pairs (ParameterKey=...,ParameterValue=... is not needed locally)."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--parameter-overrides: expected NAME=VALUE, got {item!r}")
        overrides[name] = value
    return overrides


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the local cloud was starting or running a demo step."""


_UNSAFE_TO_INTERRUPT = frozenset({"logging", "threading", "subprocess", "os", "weakref", "_weakrefset"})


class _Signals:
    """SIGINT/SIGTERM handling for the whole life of the command: before the cloud is ready a signal interrupts
    the start (which then stops whatever it had started); afterwards it ends the serving loop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.serving = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop.set()
        if self.serving:
            return
        module = str((frame.f_globals.get("__name__") if frame is not None else "") or "")
        if module.split(".")[0] in _UNSAFE_TO_INTERRUPT:
            # the main thread is inside the runtime's own bookkeeping, e.g. logging's at-fork hook releasing
            # its lock after a subprocess was spawned: an exception there is swallowed ("Exception ignored")
            # and leaves the lock held, so the start would hang on the next log call. Deliver the signal again
            # in a moment, from wherever the main thread is then.
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        raise Interrupted(signal.Signals(signum).name)

    def serve(self) -> None:
        self.serving = True
        if not self.stop.is_set():
            self.stop.wait()
        print("stopping", flush=True)


def _ready_line(cloud: LocalCloud) -> str:
    s = cloud.state
    auth = "auth=jwt (closecast token)" if s.get("auth") else "auth=off"
    return (
        f"ready api={s['api_url']} aws={s['aws_endpoint_url']} data_api={s['data_api_endpoint_url']} "
        f"stream={s['stream_name']} {auth} state={cloud.options.state_dir / STATE_FILE} "
        f"(started in {cloud.started_in_s:.1f}s)"
    )


def _start(args: argparse.Namespace) -> LocalCloud | None:
    """Start the cloud; the caller has installed `_Signals` first, so a signal now interrupts the start."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return LocalCloud(_options(args)).start()  # on any failure or signal, start() stops what it started
    except Interrupted as exc:
        print(f"interrupted by {exc} while starting; stopped", file=sys.stderr, flush=True)
        return None


def cmd_up(args: argparse.Namespace) -> int:
    signals = _Signals()
    cloud = _start(args)
    if cloud is None:
        return 130
    try:
        print(_ready_line(cloud), flush=True)
        signals.serve()
    finally:
        signals.serving = True  # a second signal must not interrupt the stop
        cloud.stop()
    return 0


def running_state(state_dir: Path) -> dict[str, Any] | None:
    """The state of a local cloud that is up, or None."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return state


def resolve_function(template: Template, name: str, event: dict[str, Any] | None = None) -> str:
    """The function a name means: a logical id, or a code folder (`stock_data`). Where several functions share
    a folder (a resource's read and write functions), an HTTP event picks the one its route goes to."""
    if name in template.functions:
        return name
    compact = name.replace("_", "").replace("-", "")
    candidates = [
        logical_id
        for logical_id, spec in template.functions.items()
        if Path(spec.code_dir).name == name or logical_id.lower() == f"{compact}function"
    ]
    route_key = (event or {}).get("routeKey")
    for route in template.routes():
        if route.function in candidates and route.route_key == route_key:
            return route.function
    if candidates:
        return candidates[0]
    raise SystemExit(
        f"closecast invoke: no function {name!r}; known: {', '.join(sorted(template.functions))}"
    )


def local_runtime(
    template: Template, root: Path, state: dict[str, Any], state_dir: Path, functions: list[str]
) -> FunctionRuntime:
    """A runtime for `functions` with the environment the running local cloud (`state`) gives them."""
    resources = LocalResources(refs=state["resources"]["refs"], attrs=state["resources"]["attrs"])
    parameters = template_parameters(template, state.get("parameter_overrides") or {})
    configs = {}
    for logical_id in functions:
        env = function_environment(
            template,
            parameters,
            resources,
            logical_id,
            aws_endpoint_url=state["aws_endpoint_url"],
            data_api_url=state["data_api_endpoint_url"],
            auth=bool(state.get("auth", True)),
        )
        configs[logical_id] = function_config(template, root, logical_id, env)
    return FunctionRuntime(configs, state_dir / "logs", max_instances=1)


def cmd_invoke(args: argparse.Namespace) -> int:
    root = repo_root()
    state_dir = (args.state_dir or root / ".closecast").resolve()
    template = Template(root / "template.yaml")
    event = json.loads(args.event.read_text()) if args.event else {}
    logical_id = resolve_function(template, args.function, event)
    state = running_state(state_dir)
    cloud: LocalCloud | None = None
    if state is None:  # nothing running: bring one up for this call only
        cloud = LocalCloud(
            CloudOptions(root=root, state_dir=state_dir, database_url=args.database_url, pollers=False)
        )
        cloud.start()
        state = cloud.state
    try:
        runtime = local_runtime(template, root, state, state_dir, [logical_id])
        try:
            result = runtime.invoke(logical_id, event)
        finally:
            runtime.close()
    finally:
        if cloud is not None:
            cloud.stop()
    if result.ok:
        print(json.dumps(result.payload, indent=2, default=str))
        return 0
    print(json.dumps(result.as_dict(), indent=2), file=sys.stdout)
    print(
        f"invoke failed: {result.error_type}: {result.error_message} "
        f"(log: {state_dir / 'logs' / (logical_id + '.log')})",
        file=sys.stderr,
    )
    return 1


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token of the demo user (`curl -H "Authorization: Bearer $(closecast token)" ...`)."""
    root = repo_root()
    state = running_state((args.state_dir or root / ".closecast").resolve())
    if state is None:
        print("closecast token: no local cloud is running (start one with `closecast up`)", file=sys.stderr)
        return 1
    if not state.get("auth"):
        print("closecast token: the local cloud runs with --no-auth; no token is needed", file=sys.stderr)
        return 1
    try:
        result = sign_in(state, args.username, args.password)
    except Exception as exc:
        print(f"closecast token: sign-in refused: {exc}", file=sys.stderr)
        return 1
    key = {"access": "AccessToken", "id": "IdToken", "refresh": "RefreshToken"}[args.kind]
    print(result[key])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from closecast_tools.local.demo import DemoError, run_demo

    signals = _Signals()
    cloud = _start(args)
    if cloud is None:
        return 130
    try:
        print(_ready_line(cloud), flush=True)
        outcome = run_demo(cloud, out=sys.stdout, days=args.days, stocks=args.stocks)
        if not outcome["ok"]:
            return 1
        if not args.exit:
            print("serving; press Ctrl-C to stop", flush=True)
            signals.serve()
    except Interrupted as exc:
        print(f"interrupted by {exc}; stopping", file=sys.stderr, flush=True)
        return 130
    except DemoError as exc:
        print(f"demo FAILED: {exc}", flush=True)
        return 1
    finally:
        signals.serving = True  # a second signal must not interrupt the stop
        cloud.stop()
    return 0
