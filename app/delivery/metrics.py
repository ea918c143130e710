"""Delivery metrics (exposed at /metrics with the rest): messages and notifications by channel kind."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

NOTIFICATIONS_SENT = Counter(
    "tocsin_notifications_sent_total", "Notifications delivered, by channel kind.", ["kind"]
)
NOTIFICATIONS_FAILED = Counter(
    "tocsin_notifications_failed_total", "Notifications whose send failed and will be retried.", ["kind"]
)
NOTIFICATIONS_DEAD = Counter(
    "tocsin_notifications_dead_total", "Notifications given up on (dead-lettered), by channel kind.", ["kind"]
)
MESSAGES = Counter(
    "tocsin_delivery_messages_total",
    "Send attempts (one message per group) by kind and outcome.",
    ["kind", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "tocsin_delivery_duration_seconds",
    "Duration of one send attempt, by channel kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
