"""Paged listing shared by the REST resources: one COUNT and one page query, both parameterised."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from closecast.db.data_api import DataApi


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = 100

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class PageResult:
    total_results: int
    page: int
    page_size: int
    data: list[dict[str, Any]]

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_results / self.page_size) if self.total_results else 0

    def envelope(self) -> dict[str, Any]:
        return {
            "total_results": self.total_results,
            "total_pages": self.total_pages,
            "page": self.page,
            "page_size": self.page_size,
            "data": self.data,
        }


def where_clauses(conditions: Mapping[str, tuple[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """`{"param": ("sql clause using :param", value)}` -> the clauses and parameters of the values that are
    not None (an absent filter is no filter)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, (clause, value) in conditions.items():
        if value is not None:
            clauses.append(clause)
            params[name] = value
    return clauses, params


def list_page(
    api: DataApi,
    *,
    select: str,
    table: str,
    where: Sequence[str],
    params: Mapping[str, Any],
    order_by: str,
    request: PageRequest,
) -> PageResult:
    """`select`, `table`, `where` and `order_by` are fixed SQL fragments of the caller (never user text);
    every user value travels in `params`."""
    where_sql = f" WHERE {' AND '.join(where)}" if where else ""
    count_sql = f"SELECT count(*) AS n FROM {table}{where_sql}"
    total = int(api.execute(count_sql, dict(params)).records[0]["n"])
    data: list[dict[str, Any]] = []
    if total and request.offset < total:
        page_sql = (
            f"SELECT {select} FROM {table}{where_sql} ORDER BY {order_by} LIMIT :_limit OFFSET :_offset"
        )
        page_params = {**params, "_limit": request.page_size, "_offset": request.offset}
        data = api.execute(page_sql, page_params).records
    return PageResult(total_results=total, page=request.page, page_size=request.page_size, data=data)
