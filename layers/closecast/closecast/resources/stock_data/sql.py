"""All SQL on `stock_data` (and `revealed_target`, which is read with it).

Writes go in bulk: one statement per chunk of up to ~4 MiB, the rows travelling column by column, one text
parameter per column holding a PostgreSQL array literal (`{1.5,NULL,2}`) that the statement casts and expands
with `unnest` into a multi-row upsert (`BatchExecuteStatement` with one parameter set per row runs one INSERT
per row and is 10-20x slower). Columns rather than JSON objects: no key names repeated on every row, so a
request carries 2.4x more rows and every stage (client, HTTP, Data API, PostgreSQL's parser) has fewer bytes to
read; PostgreSQL parses each element with the same input function as COPY. The same statement upserts the
revealed targets (a JSON parameter) and creates the date mappings of new date_ids (data-modifying CTEs), so a
batch is usually one Data API call.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import to_json

from closecast.db.data_api import MAX_REQUEST_BYTES, DataApi
from closecast.db.listing import PageRequest, PageResult, list_page, where_clauses
from closecast.market.schema import STORED_COLUMNS, Snapshot
from closecast.resources.date_mappings.sql import INSERT_NEW_FROM_JSON_SQL

_KEY = ("date_id", "seconds_in_bucket", "stock_id")
WRITE_COLUMNS: tuple[str, ...] = STORED_COLUMNS  # the Kaggle columns and the original's train_type
_TYPES = {
    "stock_id": "integer",
    "date_id": "integer",
    "seconds_in_bucket": "integer",
    "imbalance_buy_sell_flag": "smallint",
    "time_id": "integer",
    "row_id": "text",
    "train_type": "text",
}
_COLUMNS = ", ".join(STORED_COLUMNS)
_WRITE = ", ".join(WRITE_COLUMNS)
# One `unnest` per column in the select list: PostgreSQL runs them in step, a row at a time (ProjectSet), where
# `FROM unnest(a, b, ...)` first copies each column's result into a tuplestore of its own; the rows are the
# same (the arrays all have one element per row), the statement ~30% faster (PostgreSQL's array parsing and
# unnesting of 33,000 rows went from ~80 to ~50 ms).
_UNNEST = ", ".join(f"unnest(CAST(:{c} AS {_TYPES.get(c, 'double precision')}[]))" for c in WRITE_COLUMNS)
_TEXT_COLUMNS = frozenset(c for c in WRITE_COLUMNS if _TYPES.get(c) == "text")
assert set(Snapshot.model_fields) == set(WRITE_COLUMNS), "the row model and the write statement disagree"
_KEPT_IF_NULL = ("target", "train_type")  # a row sent again without these keeps the value it had
_UPDATES = ", ".join(
    f"{c} = COALESCE(EXCLUDED.{c}, stock_data.{c})" if c in _KEPT_IF_NULL else f"{c} = EXCLUDED.{c}"
    for c in WRITE_COLUMNS
    if c not in (*_KEY, "row_id", "time_id")
)

# Re-delivery is harmless: the natural key decides, features are overwritten with the same values, and a row
# sent again without its target keeps the target it had. Revealed targets live in their own table and are joined
# on read (view stock_data_with_target), so a target that arrives before its row is never lost. A date mapping
# is created for a new date_id and never changes one that exists.
WRITE_SQL = (
    "WITH new_dates AS ("
    f"{INSERT_NEW_FROM_JSON_SQL.format(param=':dates')}"
    "), revealed AS ("
    "INSERT INTO revealed_target (date_id, seconds_in_bucket, stock_id, target) "
    "SELECT t.date_id, t.seconds_in_bucket, t.stock_id, t.target "
    "FROM json_to_recordset(CAST(:targets AS json)) "
    "AS t(date_id integer, seconds_in_bucket integer, stock_id integer, target double precision) "
    "ON CONFLICT (date_id, seconds_in_bucket, stock_id) DO UPDATE SET target = EXCLUDED.target, "
    "revealed_at = now() RETURNING 1"
    ") "
    f"INSERT INTO stock_data ({_WRITE}) "
    f"SELECT {_UNNEST} "
    "ON CONFLICT (date_id, seconds_in_bucket, stock_id) DO UPDATE SET "
    f"{_UPDATES}, updated_at = now()"
)

# Reads go through the view: rows with their revealed targets.
READ_TABLE = "stock_data_with_target"

# What one statement may carry: the 4 MiB request limit less the SQL and the request's envelope.
CHUNK_BYTES = MAX_REQUEST_BYTES - 64 * 1024

DateOf = Callable[[int], dt.date | None]  # date_id -> trading date (None: unknown, no mapping made)


@dataclass(frozen=True)
class RevealedTarget:
    date_id: int
    seconds_in_bucket: int
    stock_id: int
    target: float


@dataclass
class WriteResult:
    rows: int = 0
    targets: int = 0
    calls: int = 0


def _wire(text: str) -> int:
    """Bytes `text` takes inside the request (a JSON string: quotes and escapes added)."""
    if text.isascii():
        return len(text) + text.count('"') + text.count("\\")
    return len(json.dumps(text)) - 2


_PARAMETER_BYTES = 64  # what one more parameter adds to the request besides its value: name, keys, quotes
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.-]+\Z")
Columns = dict[str, str]  # column -> its values as a PostgreSQL array literal


def _text_element(value: object) -> str:
    """One element of a text array literal: bare when it cannot be misread, else double-quoted and escaped."""
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else str(value)
    if _PLAIN_TEXT.match(text) and text.upper() != "NULL":
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_PLAIN_TEXTS = re.compile(r"[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*\Z")


def _text_elements(values: Sequence[object]) -> str:
    """The elements of a text array literal, joined. In one pass over the joined text when every value is a
    plain string (row_id) or every value is None (train_type, mostly): what `_text_element` would make of
    each, without a call and a match per value."""
    if all(value is None for value in values):
        return ",".join(["NULL"] * len(values))
    if all(value.__class__ is str for value in values):
        joined = ",".join(cast(Sequence[str], values))
        plain = _PLAIN_TEXTS.match(joined) and joined.count(",") == len(values) - 1  # no comma in a value
        if plain and "NULL" not in joined.upper():
            return joined
    return ",".join(map(_text_element, values))


def _array(column: str, values: Sequence[object]) -> str:
    """`values` as an array literal for `column`'s type. Numbers are written as the shortest text that reads
    back as the same double (what `repr` and the JSON encoder give), so values land exactly; None -> NULL."""
    if column in _TEXT_COLUMNS:
        return "{" + _text_elements(values) + "}"
    # the JSON text of a list of numbers and nulls is the array literal but for its brackets (array_in reads
    # `null` as NULL whatever its case); pydantic-core writes doubles as their shortest round-trip text (ryu)
    # several times faster than `repr`. Non-finite numbers are refused here, as the table refuses them.
    text = to_json(values, inf_nan_mode="constants")
    if b"N" in text or b"I" in text:  # NaN, Infinity (nulls are lower case)
        raise ValueError(f"{column}: non-finite numbers cannot be stored")
    return "{" + text[1:-1].decode() + "}"


def _columns_of(rows: Sequence[Snapshot]) -> Columns:
    """The rows as the write statement reads them: one array literal per column, in row order."""
    if not rows:
        return dict.fromkeys(WRITE_COLUMNS, "{}")
    # a model's field values are its __dict__: a column read off the dicts takes half the time of the rows'
    # attributes read row by row and transposed (12 vs 28 ms for 33,000 rows)
    fields = [row.__dict__ for row in rows]
    return {
        column: _array(column, list(map(operator.itemgetter(column), fields))) for column in WRITE_COLUMNS
    }


def _columns_of_dicts(rows: Sequence[Mapping[str, Any]]) -> Columns:
    """Same, from JSON-ready rows (a missing key is NULL)."""
    return {column: _array(column, [row.get(column) for row in rows]) for column in WRITE_COLUMNS}


def rows_from_parameters(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows a write statement's parameters carry, as dicts of every column (the reverse of the encoding,
    for fakes and checks: integers, floats, text and None, as the statement reads them)."""
    columns: dict[str, list[Any]] = {}
    for column in WRITE_COLUMNS:
        body = str(params[column])[1:-1]
        elements = _ELEMENT.findall(body) if body else []
        if column in _TEXT_COLUMNS:
            columns[column] = [
                None if e == "NULL" else json.loads(e) if e.startswith('"') else e for e in elements
            ]
        else:
            number = int if column in _TYPES else float
            columns[column] = [None if e.upper() == "NULL" else number(e) for e in elements]
    return [dict(zip(WRITE_COLUMNS, values, strict=True)) for values in zip(*columns.values(), strict=True)]


_ELEMENT = re.compile(r'"(?:[^"\\]|\\.)*"|[^,]+')


def _size(payload: str | Columns) -> int:
    if isinstance(payload, str):
        return _wire(payload)
    return sum(_wire(text) + _PARAMETER_BYTES for text in payload.values())


def _targets_json(targets: Sequence[RevealedTarget]) -> str:
    return json.dumps(
        [
            {
                "date_id": t.date_id,
                "seconds_in_bucket": t.seconds_in_bucket,
                "stock_id": t.stock_id,
                "target": t.target,
            }
            for t in targets
        ],
        allow_nan=False,
        separators=(",", ":"),
    )


def _split(
    items: Sequence[Any], render: Callable[[Sequence[Any]], Any], budget: int
) -> list[tuple[Any, int]]:
    """`items` rendered (as JSON text or array literals) in pieces of at most `budget` bytes each (as they
    travel in the request), with how many items each holds. Pieces are sized from a sample, rendered once, and
    halved if one still is too big."""
    if not items:
        return []
    sample = items[:200]
    per_item = _size(render(sample)) / len(sample)
    step = max(1, int(budget / (per_item * 1.1)))
    out: list[tuple[Any, int]] = []
    for start in range(0, len(items), step):
        out.extend(_fit(items[start : start + step], render, budget))
    return out


def _fit(items: Sequence[Any], render: Callable[[Sequence[Any]], Any], budget: int) -> list[tuple[Any, int]]:
    payload = render(items)
    if (
        _size(payload) <= budget or len(items) == 1
    ):  # one item over the limit: the client refuses it, naming its size
        return [(payload, len(items))]
    half = len(items) // 2
    return _fit(items[:half], render, budget) + _fit(items[half:], render, budget)


_NO_ROWS: Columns = dict.fromkeys(WRITE_COLUMNS, "{}")


def write(
    api: DataApi,
    rows: Sequence[Snapshot] = (),
    targets: Sequence[RevealedTarget] = (),
    *,
    date_of: DateOf | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> WriteResult:
    """Upsert `rows` and `targets` (a later duplicate key wins) and create the date mappings of their new
    date_ids, in as few statements as the request limit allows (one, unless they pass ~4 MiB). Each statement
    is atomic: when the database refuses a value, nothing of its chunk is written (the caller may split and
    retry to isolate the row)."""
    by_key: dict[tuple[int, int, int], Snapshot] = {}
    for row in rows:
        by_key[(row.date_id, row.seconds_in_bucket, row.stock_id)] = row
    by_target: dict[tuple[int, int, int], RevealedTarget] = {}
    for t in targets:
        by_target[(t.date_id, t.seconds_in_bucket, t.stock_id)] = t
    # key order: concurrent writers (several shards) then take row locks in the same order, not deadlocking
    ordered_rows = [by_key[key] for key in sorted(by_key)]
    ordered_targets = [by_target[key] for key in sorted(by_target)]
    dates = json.dumps(
        _mappings({k[0] for k in by_key} | {k[0] for k in by_target}, date_of), separators=(",", ":")
    )
    budget = chunk_bytes - _wire(dates)
    row_parts: list[tuple[Columns, int]] = _split(ordered_rows, _columns_of, budget)
    target_parts: list[tuple[str, int]] = _split(ordered_targets, _targets_json, budget)
    statements: list[tuple[tuple[Columns, int], tuple[str, int]]]
    if (
        len(row_parts) <= 1
        and len(target_parts) <= 1
        and sum(_size(p) for p, _ in row_parts) + sum(_size(t) for t, _ in target_parts) <= budget
    ):
        statements = [
            (row_parts[0] if row_parts else (_NO_ROWS, 0), target_parts[0] if target_parts else ("[]", 0))
        ]
    else:  # rows and targets in statements of their own
        statements = [(part, ("[]", 0)) for part in row_parts] + [
            ((_NO_ROWS, 0), part) for part in target_parts
        ]
    result = WriteResult()
    for (columns, n_rows), (targets_text, n_targets) in statements:
        if not n_rows and not n_targets:
            continue
        api.execute(
            WRITE_SQL,
            {**columns, "targets": targets_text, "dates": dates},  # dates each time: each stands alone
            idempotent=True,  # the same upsert again changes nothing: safe to retry after a 500 or a timeout
        )
        result.rows += n_rows
        result.targets += n_targets
        result.calls += 1
    return result


def _mappings(date_ids: set[int], date_of: DateOf | None) -> list[dict[str, object]]:
    """The date mappings to create for `date_ids` (those the calendar knows)."""
    if date_of is None:
        return []
    mappings: list[dict[str, object]] = []
    for date_id in sorted(date_ids):
        day = date_of(date_id)
        if day is not None:
            mappings.append({"date_id": date_id, "trading_date": day.isoformat()})
    return mappings


def upsert(api: DataApi, rows: Sequence[Snapshot], *, date_of: DateOf | None = None) -> int:
    return write(api, rows, date_of=date_of).rows


def reveal_targets(api: DataApi, targets: Sequence[RevealedTarget]) -> int:
    return write(api, (), targets).targets


@dataclass(frozen=True)
class StockDataFilter:
    date_id: int | None = None
    date_id_from: int | None = None
    date_id_to: int | None = None
    stock_id: int | None = None
    seconds_in_bucket: int | None = None
    has_target: bool | None = None
    train_type: str | None = None


def list_rows(api: DataApi, where: StockDataFilter, page: PageRequest) -> PageResult:
    clauses, params = where_clauses(
        {
            "date_id": ("date_id = :date_id", where.date_id),
            "date_id_from": ("date_id >= :date_id_from", where.date_id_from),
            "date_id_to": ("date_id <= :date_id_to", where.date_id_to),
            "stock_id": ("stock_id = :stock_id", where.stock_id),
            "seconds_in_bucket": ("seconds_in_bucket = :seconds_in_bucket", where.seconds_in_bucket),
            "train_type": ("train_type = :train_type", where.train_type),
        }
    )
    if where.has_target is not None:
        clauses.append("target IS NOT NULL" if where.has_target else "target IS NULL")
    return list_page(
        api,
        select=_COLUMNS,
        table=READ_TABLE,
        where=clauses,
        params=params,
        order_by="date_id, seconds_in_bucket, stock_id",
        request=page,
    )


def bulk_upsert_json(
    api: DataApi, rows_json: str, *, date_ids: Sequence[int] = (), date_of: DateOf | None = None
) -> int:
    """Upsert the rows of a JSON array (Kaggle columns; null for a missing value) in one statement of the
    stream's write path (closecast backfill), creating the date mappings of `date_ids`."""
    dates = json.dumps(_mappings(set(date_ids), date_of), separators=(",", ":"))
    columns = _columns_of_dicts(json.loads(rows_json))
    return api.execute(WRITE_SQL, {**columns, "targets": "[]", "dates": dates}, idempotent=True).updated
