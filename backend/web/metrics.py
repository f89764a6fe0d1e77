"""Prometheus metrics, one registry per app (so tests and several apps do not collide)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.updates = Counter(
            "gs_updates_total", "Telegram updates received", ["outcome"], registry=r
        )
        self.update_seconds = Histogram(
            "gs_update_seconds",
            "Time to handle one update or web-chat answer",
            ["channel"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.answers = Counter("gs_answers_total", "Answers stored", ["channel"], registry=r)
        self.bot_calls = Counter(
            "gs_bot_api_calls_total", "Bot API calls", ["method", "outcome"], registry=r
        )
        self.rate_limited = Counter(
            "gs_bot_api_429_total", "Bot API 429 answers (flood control)", registry=r
        )
        self.outbound_queue = Gauge(
            "gs_outbound_queue_depth", "Bot API calls waiting for the rate limiter", registry=r
        )
        self.errors = Counter("gs_errors_total", "Errors by kind", ["kind"], registry=r)

    def observe_update(self, channel: str, seconds: float, answered: bool) -> None:
        """One respondent event handled (`conversations.ports.Metrics`)."""
        self.update_seconds.labels(channel).observe(seconds)
        if answered:
            self.answers.labels(channel).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
