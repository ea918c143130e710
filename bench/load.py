"""Concurrent clients posting pre-serialized batches to POST /v1/findings over keep-alive connections.

The payloads are built and serialized with orjson before the clock starts, so a client costs little
more than the socket writes; each client thread holds one httpx connection for the whole run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.common import TOKEN, percentile, rate
from bench.server import Service


@dataclass(slots=True)
class Body:
    """One request body and how many findings it carries."""

    content: bytes
    findings: int


def batch_bodies(items: Sequence[dict[str, Any]], size: int) -> list[Body]:
    return [
        Body(orjson.dumps({"findings": list(items[start : start + size])}), len(items[start : start + size]))
        for start in range(0, len(items), size)
    ]


@dataclass(slots=True)
class LoadResult:
    findings: int = 0
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    connections: dict[int, int] = field(default_factory=dict)  # server pid -> client connections
    bodies_sent: int = 0  # bodies[:bodies_sent] were sent (all of them unless the time cap stopped the run)

    @property
    def rate(self) -> float:
        return rate(self.findings, self.seconds)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


def combined(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs as one: findings and seconds added up, latencies pooled."""
    out = LoadResult()
    for r in results:
        out.findings += r.findings
        out.seconds += r.seconds
        out.latencies += r.latencies
        out.requests += r.requests
        out.created += r.created
        out.updated += r.updated
        out.unchanged += r.unchanged
        out.errors += r.errors
        out.error_samples += r.error_samples
    return out


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _clients(service: Service, count: int) -> list[httpx.Client]:
    """``count`` clients, each with one warm keep-alive connection, spread evenly over the processes.

    The kernel hashes SO_REUSEPORT connections to processes; with four connections and two processes it
    puts 3:1 or 4:0 on one side half the time, which a load balancer would not. Reconnect until even.
    """
    even = len(service.pids) <= 1 or count % len(service.pids) != 0
    for _ in range(20):
        clients = [
            httpx.Client(
                base_url=service.base_url,
                headers=auth_headers(),
                timeout=httpx.Timeout(300.0),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=600),
            )
            for _ in range(count)
        ]
        for client in clients:
            client.get("/healthz").raise_for_status()
        if even or len(set(service.connections_per_process().values())) == 1:
            return clients
        for client in clients:
            client.close()
    return clients


def post_batches(
    service: Service,
    bodies: Sequence[Body],
    clients: int = 4,
    cap_seconds: float | None = None,
    path: str = "/v1/findings",
) -> LoadResult:
    """Post the bodies in order, ``clients`` requests in flight; wall time from the first send to the last
    reply. With ``cap_seconds`` no new request starts after that time (``bodies_sent`` says how many went)."""
    result = LoadResult()
    pool = _clients(service, clients)
    result.connections = service.connections_per_process()
    counter = itertools.count()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [float("inf")]

    def worker(client: httpx.Client) -> None:
        latencies: list[float] = []
        totals = [0, 0, 0, 0, 0]  # findings, created, updated, unchanged, errors
        errors: list[str] = []
        start.wait()
        while (index := next(counter)) < len(bodies) and time.perf_counter() < stop_at[0]:
            with lock:
                result.bodies_sent = max(result.bodies_sent, index + 1)
            body = bodies[index]
            sent_at = time.perf_counter()
            try:
                response = client.post(
                    path, content=body.content, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as exc:
                totals[4] += 1
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - sent_at)
            if response.status_code != 200:
                totals[4] += 1
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            answer = orjson.loads(response.content)
            totals[0] += body.findings
            totals[1] += answer["created"]
            totals[2] += answer["updated"]
            totals[3] += answer["unchanged"]
        with lock:
            result.latencies.extend(latencies)
            result.findings += totals[0]
            result.created += totals[1]
            result.updated += totals[2]
            result.unchanged += totals[3]
            result.errors += totals[4]
            result.error_samples.extend(errors[:3])

    threads = [threading.Thread(target=worker, args=(client,), daemon=True) for client in pool]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    if cap_seconds is not None:
        stop_at[0] = began + cap_seconds
    start.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    result.requests = len(result.latencies)
    for client in pool:
        client.close()
    return result
