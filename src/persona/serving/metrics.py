"""Prometheus metrics of the API: requests, latency, predictions by persona, live model.

Under gunicorn with several workers the metrics use prometheus_client's multiprocess
mode: `03_deployment/gunicorn.conf.py` points `PROMETHEUS_MULTIPROC_DIR` at a fresh temp
folder before any worker imports prometheus_client, every worker writes its values there
and `/metrics` merges them. Without that variable (tests, a single process) each app gets
its own in-memory registry.

Label children are cached so the per-request cost is one dict lookup and two increments.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """Return the multiprocess metrics folder when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class Metrics:
    """The API's metrics with cached label children.

    Args:
        registry: Registry to register the metrics in; a new private one by default so
            several apps (tests) can coexist in one process.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._requests = Counter(
            "persona_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "persona_http_request_duration_seconds",
            "Time to build the response, by route and status.",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._predictions = Counter(
            "persona_predictions",
            "Records labelled, by assigned persona id.",
            ["persona_id"],
            registry=self.registry,
        )
        self._model_info = Gauge(
            "persona_model_info",
            "1 for the model version a worker serves, 0 for versions it served before.",
            ["name", "version", "alias"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._reloads = Counter(
            "persona_model_reloads",
            "Model loads by result (loaded / failed).",
            ["result"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._persona_children: dict[str, Any] = {}
        self._live: tuple[str, str, str] | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and record its latency.

        Args:
            route: Route template (a fixed set; unknown paths are reported as ``other``).
            method: HTTP method.
            status: Response status code.
            seconds: Time spent building the response.
        """
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            code = str(status)
            children = (
                self._requests.labels(route, method, code),
                self._latency.labels(route, code),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_personas(self, persona_ids: np.ndarray) -> None:
        """Count labelled records by persona.

        Args:
            persona_ids: The assigned persona id of every record of a response.
        """
        if len(persona_ids) == 1:
            self._persona(str(persona_ids[0])).inc()
            return
        values, counts = np.unique(persona_ids, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._persona(value).inc(count)

    def _persona(self, persona_id: str) -> Any:
        child = self._persona_children.get(persona_id)
        if child is None:
            child = self._persona_children[persona_id] = self._predictions.labels(persona_id)
        return child

    def model_loaded(self, name: str, version: str, alias: str) -> None:
        """Mark a model version as the live one (and the previous one as replaced).

        Args:
            name: Registered model name.
            version: Version now served.
            alias: Alias it was loaded through ('' when pinned).
        """
        if self._live is not None:
            self._model_info.labels(*self._live).set(0)
        self._live = (name, version, alias)
        self._model_info.labels(*self._live).set(1)
        self._reloads.labels("loaded").inc()

    def model_load_failed(self) -> None:
        """Count a failed model load."""
        self._reloads.labels("failed").inc()

    def exposition(self) -> tuple[bytes, str]:
        """Render every metric in the Prometheus text format.

        Returns:
            The body and its content type; in multiprocess mode the values of every live
            worker are merged.
        """
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=folder)
        return generate_latest(merged), CONTENT_TYPE_LATEST
