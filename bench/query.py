"""Read latency at the largest store: GET /v1/findings with typical filters, first and deep pages, stats.

One client, one keep-alive connection, requests one after another (latency, not throughput): p50/p95
over up to ``requests`` calls per line, stopped early at a time cap so a slow query cannot eat the budget.
A deep page is reached by following ``next_cursor`` ``deep_pages`` times, then that page is timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import percentile
from bench.generator import ACCOUNTS
from bench.load import auth_headers

QUERIES: list[tuple[str, dict[str, str]]] = [
    ("open, severity ≥ high, by score", {"status": "open", "severity_min": "high", "sort": "-score"}),
    ("account_id", {"account_id": ACCOUNTS[3]}),
    ("tag env=prod", {"tag": "env=prod"}),
    ("team", {"team": "payments"}),
    ("text q", {"q": "BruteForce"}),
]
# Filters the API may not have yet: run only when GET /v1/findings declares the parameter.
OPTIONAL_PARAMETERS = {"team"}


@dataclass(slots=True)
class QueryLine:
    name: str
    page: str  # "first" or "deep"
    latencies: list[float] = field(default_factory=list)
    items: int = 0
    note: str = ""

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies, 95) * 1000


def declared_parameters(client: httpx.Client) -> set[str]:
    """The query parameters the running service documents for GET /v1/findings."""
    spec = client.get("/openapi.json").json()
    operation = spec.get("paths", {}).get("/v1/findings", {}).get("get", {})
    return {param["name"] for param in operation.get("parameters", [])}


def _time(
    client: httpx.Client, path: str, params: dict[str, str], requests: int, cap: float
) -> tuple[list[float], Any]:
    latencies: list[float] = []
    body: Any = None
    deadline = time.perf_counter() + cap
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path, params=params)
        latencies.append(time.perf_counter() - began)
        response.raise_for_status()
        body = response.json()
        if time.perf_counter() > deadline:
            break
    return latencies, body


def run_queries(base_url: str, requests: int, cap_seconds: float, deep_pages: int) -> list[QueryLine]:
    lines: list[QueryLine] = []
    with httpx.Client(base_url=base_url, headers=auth_headers(), timeout=120) as client:
        declared = declared_parameters(client)
        for name, params in QUERIES:
            missing = sorted(set(params) & OPTIONAL_PARAMETERS - declared)
            if missing:
                note = f"n/a (no {', '.join(missing)} filter yet)"
                lines += [QueryLine(name, "first", note=note), QueryLine(name, "deep", note=note)]
                continue
            first = QueryLine(name, "first")
            first.latencies, body = _time(client, "/v1/findings", params, requests, cap_seconds)
            first.items = len(body["items"])
            lines.append(first)
            deep = QueryLine(name, "deep")
            cursor, depth = body.get("next_cursor"), 1
            while cursor and depth < deep_pages:
                response = client.get("/v1/findings", params={**params, "cursor": cursor})
                response.raise_for_status()
                cursor, depth = response.json().get("next_cursor"), depth + 1
            if not cursor:
                deep.note = f"n/a (only {depth} page(s))"
            else:
                deep.latencies, body = _time(
                    client, "/v1/findings", {**params, "cursor": cursor}, requests, cap_seconds
                )
                deep.items = len(body["items"])
                deep.note = f"page {depth + 1}"
            lines.append(deep)
        stats = QueryLine("stats", "-")
        stats.latencies, body = _time(client, "/v1/stats", {}, requests, cap_seconds)
        stats.items = int(body.get("total", 0))
        lines.append(stats)
    return lines
