"""One warm Lambda "instance" of the local cloud: a process that imports one handler and serves invocations.

Protocol (one JSON object per line): requests on stdin `{"request_id", "event", "timeout_ms"}`, answers on a
private copy of the original stdout `{"ok": true, "result": ...}` or `{"ok": false, "errorType",
"errorMessage", "stackTrace"}`. Whatever the handler prints goes to stderr (the function's log), as on Lambda.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class Context:
    """The fields of the Lambda context object that handlers and Powertools read."""

    def __init__(self, request_id: str, timeout_ms: int) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def main() -> int:
    code_dir, handler_path = sys.argv[1], sys.argv[2]
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, code_dir)
    module_name, _, function_name = handler_path.rpartition(".")
    handler: Any = None
    import_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        import_error = _error(exc, "Runtime.ImportModuleError")
    for line in sys.stdin:
        request = json.loads(line)
        if import_error is not None:
            answers.write(json.dumps(import_error) + "\n")
            continue
        context = Context(request["request_id"], int(request["timeout_ms"]))
        try:
            result = handler(request["event"], context)
            answer = {"ok": True, "result": result}
            text = json.dumps(answer, default=str)
        except Exception as exc:
            traceback.print_exc()
            text = json.dumps(_error(exc), default=str)
        answers.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
