"""Prometheus metrics (exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "tocsin_http_requests_total", "HTTP requests by method, route and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tocsin_http_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FINDINGS_INGESTED = Counter("tocsin_findings_ingested_total", "Findings accepted by outcome.", ["outcome"])
FINDINGS_REJECTED = Counter("tocsin_findings_rejected_total", "Findings rejected as invalid.")

# Every outcome exists from the start at 0, so rate() and absent() work before the first ingest.
for _outcome in ("created", "updated", "unchanged"):
    FINDINGS_INGESTED.labels(_outcome)
