"""``GET /metrics``: counters, gauges and histograms in the Prometheus text format.

Written by hand (about a hundred lines) rather than with ``prometheus_client``: the server needs
four kinds of series, and the exposition format is plain text
(https://prometheus.io/docs/instrumenting/exposition_formats/). Values are updated from the
event loop and from worker threads, so every update takes the registry's lock.
"""
from __future__ import annotations

import math
import threading
from typing import Iterable

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "LATENCY_BUCKETS", "BATCH_BUCKETS",
           "server_metrics"]

#: seconds: a tiny CPU model answers in milliseconds, a ResNet-50 clip in seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: requests per model call
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Iterable[str] = (),
                 lock: threading.Lock | None = None):
        self.name, self.help = name, help_text
        self.label_names = tuple(labels)
        self._lock = lock or threading.Lock()
        self._values: dict[tuple[str, ...], object] = {}

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(f"metric {self.name} takes labels {self.label_names}, "
                             f"got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A value that only goes up (requests, errors, frames)."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return float(self._values.get(self._key(labels), 0.0))

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_number(v)}"
                                for k, v in items]


class Gauge(Counter):
    """A value that goes up and down (queue depth, open stream connections)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)


class Histogram(_Metric):
    """Counts of observations per upper bound (cumulative), their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Iterable[str] = (),
                 buckets: Iterable[float] = LATENCY_BUCKETS, lock: threading.Lock | None = None):
        super().__init__(name, help_text, labels, lock)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total = self._values.get(key, ([0] * len(self.buckets), 0.0))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            self._values[key] = (counts, total + value)

    def bucket_counts(self, **labels: str) -> list[int]:
        """Observations ``<=`` each bound of :attr:`buckets` (cumulative, ``+Inf`` last)."""
        with self._lock:
            counts, _ = self._values.get(self._key(labels), ([0] * len(self.buckets), 0.0))
            return list(counts)

    def count(self, **labels: str) -> int:
        return self.bucket_counts(**labels)[-1]

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), s)) for k, (c, s) in self._values.items())
        lines = self.header()
        for key, (counts, total) in items:
            for bound, n in zip(self.buckets, counts):
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {n}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


class Registry:
    """The metrics of one server; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric) -> _Metric:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labels: Iterable[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labels, self._lock))

    def gauge(self, name: str, help_text: str, labels: Iterable[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, labels, self._lock))

    def histogram(self, name: str, help_text: str, labels: Iterable[str] = (),
                  buckets: Iterable[float] = LATENCY_BUCKETS) -> Histogram:
        return self._add(Histogram(name, help_text, labels, buckets, self._lock))

    def __getitem__(self, name: str) -> _Metric:
        return self._metrics[name]

    def render(self) -> str:
        return "\n".join(line for m in self._metrics.values() for line in m.render()) + "\n"


def server_metrics() -> Registry:
    """The series ``vidcls serve`` exports (names follow Prometheus' base-unit conventions)."""
    reg = Registry()
    reg.counter("vidcls_requests_total", "HTTP requests by endpoint and status code",
                ("endpoint", "status"))
    reg.counter("vidcls_errors_total", "HTTP requests answered with an error (status >= 400) "
                "and WebSocket frames answered with an error", ("endpoint", "status"))
    reg.histogram("vidcls_request_duration_seconds", "HTTP request latency", ("endpoint",))
    reg.histogram("vidcls_batch_size", "predict requests per model call (dynamic batching)",
                  ("model",), buckets=BATCH_BUCKETS)
    reg.gauge("vidcls_queue_depth", "predict requests waiting for their model", ("model",))
    reg.gauge("vidcls_stream_connections", "open WebSocket streams", ("model",))
    reg.counter("vidcls_stream_frames_total", "WebSocket frames by outcome (ok, error, "
                "dropped: over the per-connection frame rate cap)", ("model", "outcome"))
    reg.histogram("vidcls_stream_frame_seconds", "server time per streamed frame (decode, "
                  "queue, preprocess, model step)", ("model",))
    return reg
