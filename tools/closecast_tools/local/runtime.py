"""Runs the template's functions as local warm processes, each with its own environment (as Lambda does).

A function gets up to `max_instances` worker processes; an invocation takes a free one or starts one, and a
worker that passes the function's timeout is killed, like a Lambda sandbox. Zip and image functions run the
same way: the image function's handler is imported from its Docker context.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic_core import to_json

# Environment passed through from the parent (the rest comes from the template, as on Lambda).
_INHERITED = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "TZ",
)


def die_with_parent() -> None:
    """For `preexec_fn`: on Linux, ask the kernel to send SIGTERM to the child when its parent dies, however it
    dies, so that a service does not outlive the local cloud. The kernel ties this to the *thread* that started
    the child, so use it only from a thread that lives as long as the cloud (the one that starts it). Workers
    need none: they read requests from a pipe and exit when the parent's end of it closes."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class InvokeResult:
    ok: bool
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    duration_ms: float = 0.0
    request_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "payload": self.payload}
        return {"ok": False, "errorType": self.error_type, "errorMessage": self.error_message}


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    """True when `value` holds JSON's own types alone (dicts with string keys, lists, strings, numbers, booleans,
    None): what every encoder writes alike."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(map(_plain, value))
    return kind in _PLAIN_SCALARS


def encode_request(request: Any) -> bytes:
    """A request as one line of JSON for a worker. A plain one (every Kinesis and SQS event: megabytes of base64
    text) goes through pydantic-core's encoder, ~5x faster than the standard library's, when the text it writes
    is ASCII as the standard library's is; the worker reads the same values either way. Anything else (a
    datetime, bytes) as before: `json.dumps` with `str` for what JSON cannot hold."""
    if _plain(request):
        try:
            text = to_json(request, inf_nan_mode="constants")
        except ValueError:  # e.g. a lone surrogate, which only the standard library escapes
            pass
        else:
            if text.isascii():
                return text
    return json.dumps(request, default=str).encode()


class InvocationError(RuntimeError):
    pass


@dataclass
class FunctionConfig:
    name: str
    code_dir: Path
    handler: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]


class _Worker:
    def __init__(self, config: FunctionConfig, log: IO[bytes]) -> None:
        env = {k: v for k, v in os.environ.items() if k in _INHERITED}
        env.update(config.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": config.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "closecast_tools.local.worker", str(config.code_dir), config.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=str(config.code_dir),
            # not in the terminal's process group: Ctrl-C goes to the cloud, which ends its workers itself
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._buffer = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(encode_request(request))
            self.process.stdin.write(b"\n")
            self.process.stdin.flush()
        except OSError as exc:  # the worker is gone
            raise InvocationError(f"worker exited with code {self.process.wait()}") from exc
        deadline = time.monotonic() + timeout_s
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise TimeoutError
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise InvocationError(f"worker exited with code {self.process.wait()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.alive():
            assert self.process.stdin is not None
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._selector.close()


class FunctionRuntime:
    def __init__(self, functions: dict[str, FunctionConfig], log_dir: Path, max_instances: int = 2) -> None:
        self.functions = functions
        self.log_dir = log_dir
        self.max_instances = max_instances
        self._idle: dict[str, list[_Worker]] = {name: [] for name in functions}
        self._count: dict[str, int] = dict.fromkeys(functions, 0)
        self._cond = threading.Condition()
        self._logs: dict[str, IO[bytes]] = {}
        self._closed = False
        log_dir.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _acquire(self, name: str) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise InvocationError("local runtime is stopped")
                idle = self._idle[name]
                while idle:
                    worker = idle.pop()
                    if worker.alive():
                        return worker
                    self._count[name] -= 1
                if self._count[name] < self.max_instances:
                    self._count[name] += 1
                    break
                self._cond.wait()
        try:
            if name not in self._logs:
                self._logs[name] = open(self.log_path(name), "ab", buffering=0)  # noqa: SIM115
            return _Worker(self.functions[name], self._logs[name])
        except BaseException:
            with self._cond:
                self._count[name] -= 1
                self._cond.notify_all()
            raise

    def _release(self, name: str, worker: _Worker, healthy: bool) -> None:
        with self._cond:
            if healthy and worker.alive() and not self._closed:
                self._idle[name].append(worker)
            else:
                self._count[name] -= 1
                threading.Thread(target=worker.stop, daemon=True).start()
            self._cond.notify_all()

    def invoke(self, name: str, event: Any) -> InvokeResult:
        result = self._invoke(name, event)
        if not result.ok:  # as Lambda reports it in the function's log
            line = f"[local] invocation {result.request_id} failed: {result.error_type}: {result.error_message}\n"
            log = self._logs.get(name)
            if log is not None:
                log.write(line.encode())
        return result

    def _invoke(self, name: str, event: Any) -> InvokeResult:
        if name not in self.functions:
            raise InvocationError(f"no function {name!r} in the template")
        config = self.functions[name]
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        worker = self._acquire(name)
        healthy = True
        try:
            answer = worker.call(
                {"request_id": request_id, "event": event, "timeout_ms": config.timeout_s * 1000},
                timeout_s=config.timeout_s + 1.0,
            )
        except TimeoutError:
            healthy = False
            worker.process.kill()
            return InvokeResult(
                False,
                None,
                "Sandbox.Timedout",
                f"Task timed out after {config.timeout_s:.2f} seconds",
                (time.perf_counter() - started) * 1000,
                request_id,
            )
        except InvocationError as exc:
            healthy = False
            return InvokeResult(
                False, None, "Runtime.ExitError", str(exc), (time.perf_counter() - started) * 1000, request_id
            )
        finally:
            self._release(name, worker, healthy)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.get("ok"):
            return InvokeResult(True, answer.get("result"), duration_ms=elapsed, request_id=request_id)
        return InvokeResult(
            False, None, answer.get("errorType"), answer.get("errorMessage"), elapsed, request_id
        )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            for ws in self._idle.values():
                ws.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.stop()
        for log in self._logs.values():
            log.close()
