"""Fast API tests: each function's handler called with payload-2.0 events, the Data API replaced at the client
boundary by a recording fake (no local cloud, no PostgreSQL)."""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from closecast.api import handler as api_handler
from closecast.config import ApiConfig
from closecast.db.data_api import Result
from closecast.resources.stock_data import sql as stock_data_sql

REPO = Path(__file__).resolve().parents[3]
BUCKET = "closecast-databucket"  # the local cloud's name of the stack's bucket (as in events/)
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)

Answer = Callable[[str, Mapping[str, Any]], Result | Exception | None]


@dataclass
class FakeDataApi:
    """Records every statement; `answers` are tried in order, the first non-None result is returned (or raised).
    Unanswered: a count of `total`, a page of `rows`, an INSERT ... RETURNING of its own parameters."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    answers: list[Answer] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    batches: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, **_: Any) -> Result:
        params = dict(params or {})
        self.calls.append((sql, params))
        if "row_id" in params:  # the bulk write: its rows (one array per column), like a batch's sets
            self.batches.append((sql, stock_data_sql.rows_from_parameters(params)))
        if "mappings" in params:
            self.batches.append((sql, json.loads(params["mappings"])))
        for answer in self.answers:
            outcome = answer(sql, params)
            if isinstance(outcome, Exception):
                raise outcome
            if outcome is not None:
                return outcome
        if "count(*)" in sql:
            return Result(records=[{"n": len(self.rows) if self.total is None else self.total}])
        if sql.lstrip().upper().startswith("SELECT 1"):
            return Result(records=[{"one": 1}])
        if "RETURNING" in sql:
            record = {"id": 1, "created_at": NOW, **params}
            if "version" in record and record["version"] is None:
                record["version"] = 1  # the database numbers a model's versions
            return Result(records=[record])
        return Result(records=self.rows)

    def batch_execute(self, sql: str, param_sets: Sequence[Mapping[str, Any]], **_: Any) -> int:
        self.batches.append((sql, [dict(p) for p in param_sets]))
        for answer in self.answers:
            outcome = answer(sql, {})
            if isinstance(outcome, Exception):
                raise outcome
        return len(param_sets)

    def with_retry_budget(self, max_attempts: int, max_retry_seconds: float) -> FakeDataApi:
        return self

    def where(self) -> str:
        """The WHERE clause of the last page query."""
        page_sql = [sql for sql, _ in self.calls if "LIMIT" in sql or "count(*)" in sql][-1]
        match = re.search(r" WHERE (.*?)(?: ORDER BY|$)", page_sql)
        return match.group(1) if match else ""


@dataclass
class Context:
    function_name: str = "test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"


def _load_app(function: str) -> ModuleType:
    path = REPO / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"closecast_test_app_{function}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDataApi]:
    api = FakeDataApi()
    config = ApiConfig.model_validate(
        {
            "DB_CLUSTER_ARN": "arn:aws:rds:us-east-1:123456789012:cluster:closecast",
            "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:closecast",
            "DB_NAME": "closecast",
            "BUCKET_NAME": BUCKET,
        }
    )
    monkeypatch.setattr(api_handler, "_context", lambda: {"api": api, "config": config})
    yield api


@dataclass
class Answered:
    status: int
    body: Any
    headers: dict[str, str]


@pytest.fixture
def call(fake_api: FakeDataApi) -> Callable[..., Answered]:
    """`call(function, event)` -> the handler's answer with its JSON body parsed."""
    apps: dict[str, ModuleType] = {}

    def invoke(function: str, event: dict[str, Any]) -> Answered:
        if function not in apps:
            apps[function] = _load_app(function)
        answer = apps[function].handler(event, Context())
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        assert headers.get("content-type", "").startswith("application/json"), answer
        return Answered(answer["statusCode"], json.loads(body), headers)

    return invoke


def event(
    method: str,
    path: str,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    groups: Sequence[str] | None = ("writers", "readers"),
) -> dict[str, Any]:
    """A payload-2.0 event as API Gateway sends it; `groups`: the caller's token groups as the JWT authorizer
    passes them on (None: no authorizer context at all)."""
    from urllib.parse import urlencode

    text = body if body is None or isinstance(body, str) else json.dumps(body)
    result: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "r",
            "routeKey": f"{method} {path}",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    if groups is not None:
        claims = {"sub": "u", "token_use": "access", "cognito:groups": "[" + " ".join(groups) + "]"}
        result["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if query:
        result["queryStringParameters"] = {k: str(v) for k, v in query.items()}
    if text is not None:
        result["body"] = text
    return result


def snapshot(**overrides: Any) -> dict[str, Any]:
    """One complete row (every column present)."""
    row: dict[str, Any] = {
        "stock_id": 0,
        "date_id": 478,
        "seconds_in_bucket": 0,
        "imbalance_size": 3753451.43,
        "imbalance_buy_sell_flag": -1,
        "reference_price": 0.999875,
        "matched_size": 11548975.43,
        "far_price": None,
        "near_price": None,
        "bid_price": 0.999875,
        "bid_size": 22940.0,
        "ask_price": 1.00005,
        "ask_size": 9177.6,
        "wap": 1.0,
        "target": None,
    }
    row.update(overrides)
    return row
