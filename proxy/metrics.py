"""Prometheus metrics (DESIGN.md section 11): one registry per daemon, fed by the middleware and the pipeline.

Where each series comes from, so every dialect and the WebSocket route count the same way:
- `RequestMiddleware` (and the WebSocket route, per request) records ``trinfer_requests_total`` and
  ``trinfer_request_duration_seconds`` once per request, when it ends.
- The pipeline (`proxy.pipeline`) records, per generation: time to first token (from the request's arrival to
  its first content event reaching the proxy's consumer), inter-token latency, token counts from `Done`, the
  cancellation phase when the client leaves, and the rejections (queue full, queue timeout, stop deadline
  while queued).
- The model manager (`proxy.model_manager`) reports each load (its duration, whether it worked) and unload (why).
- Gauges (queue depth, active generations, readiness, breaker, which managed models are loaded) are read from
  the backends' own state at scrape time by `_BackendCollector`, so they can never drift from what
  ``/admin/status`` shows.

Labels are bounded: ``route`` is the route's template (``/v1/models/{id}``, ``other`` for unknown paths),
``model`` is a configured model id or ``unknown`` (``none`` when the request named none), ``backend`` a
configured backend name (``none`` when the request was refused before one was picked). No prompt, key,
request id or client string ever becomes a label value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.types import Usage

from .model_manager import ManagedModel
from .routing import Router

#: What ``GET /metrics`` answers with.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds. Whole requests: from a quick refusal (ms) to a long non-streaming generation (minutes).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Seconds. First token: a mock answers in ms, a local model after its prompt evaluation (up to tens of s).
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 60.0)
#: Seconds. A model load: a small GGUF from the page cache (0.1 s) to a big one from a cold disk (minutes).
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Seconds between tokens: 1 ms (a fast GPU or the mock) to 1 s (a big model on a busy CPU).
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)

NO_MODEL = "none"
UNKNOWN_MODEL = "unknown"
NO_BACKEND = "none"
#: The status label of a request whose client left before any response was sent (nginx's convention).
CLIENT_CLOSED = "499"


class Phase(enum.StrEnum):
    """When a client's cancellation reached its generation."""

    QUEUED = "queued"
    BEFORE_FIRST_TOKEN = "before_first_token"
    STREAMING = "streaming"
    NON_STREAMING = "non_streaming"


class Rejection(enum.StrEnum):
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    SHUTTING_DOWN = "shutting_down"


class Metrics:
    """The daemon's series and its registry (one per daemon: tests run several in one process)."""

    def __init__(self, router: Router, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self._models = frozenset(router.model_ids())
        registry = self.registry
        self.requests = Counter(
            "trinfer_requests", "Requests answered, by route template, model and status.",
            ("route", "model", "status"), registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "trinfer_request_duration_seconds", "Whole request time, until the last byte of a stream.",
            ("route", "model"), buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "trinfer_time_to_first_token_seconds",
            "From the request's arrival to its first generated content, measured in the proxy.",
            ("model",), buckets=TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.itl = Histogram(
            "trinfer_inter_token_latency_seconds",
            "Time between generated content events, measured in the proxy (a batch shares its interval).",
            ("model",), buckets=ITL_BUCKETS, registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "trinfer_prompt_tokens", "Prompt tokens of finished generations.", ("model",), registry=registry
        )
        self.cached_prompt_tokens = Counter(
            "trinfer_cached_prompt_tokens",
            "Prompt tokens a backend took from its prefix cache instead of evaluating them.",
            ("model",), registry=registry,
        )  # fmt: skip
        self.completion_tokens = Counter(
            "trinfer_completion_tokens", "Generated tokens of finished generations.", ("model",), registry=registry
        )
        self.rejected = Counter(
            "trinfer_rejected", "Requests refused by admission or the stop.", ("backend", "reason"),
            registry=registry,
        )  # fmt: skip
        self.cancelled = Counter(
            "trinfer_cancelled", "Generations whose client left, by the phase it left in.", ("backend", "phase"),
            registry=registry,
        )  # fmt: skip
        self.model_loads = Counter(
            "trinfer_model_loads", "Model loads by the model manager, by outcome (ok, failed).",
            ("backend", "outcome"), registry=registry,
        )  # fmt: skip
        self.model_unloads = Counter(
            "trinfer_model_unloads", "Model unloads by the model manager, by reason (keep_alive, evicted).",
            ("backend", "reason"), registry=registry,
        )  # fmt: skip
        self.model_load_duration = Histogram(
            "trinfer_model_load_duration_seconds", "Time one model load took (ok or failed).",
            ("backend",), buckets=LOAD_BUCKETS, registry=registry,
        )  # fmt: skip
        registry.register(_BackendCollector(router))
        # Labelled series looked up once per label set: prometheus_client's ``labels()`` validates and locks on
        # every call, several times per request. The label sets are bounded (route templates, configured
        # models, statuses), and a series is still created only when first observed, as before.
        self._request_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._usage_series: dict[str, tuple[Counter, Counter]] = {}

    def model_label(self, model: str | None) -> str:
        if model is None:
            return NO_MODEL
        return model if model in self._models else UNKNOWN_MODEL

    def observe_request(self, route: str, model: str | None, status: str, duration_s: float) -> None:
        if not self.enabled:
            return
        label = self.model_label(model)
        key = (route, label, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (self.requests.labels(*key), self.duration.labels(route, label))
        series[0].inc()
        series[1].observe(duration_s)

    def observe_rejection(self, backend: str, reason: Rejection) -> None:
        if self.enabled:
            self.rejected.labels(backend, reason.value).inc()

    def observe_cancellation(self, backend: str, phase: Phase) -> None:
        if self.enabled:
            self.cancelled.labels(backend, phase.value).inc()

    def observe_usage(self, model: str, usage: Usage) -> None:
        if not self.enabled:
            return
        label = self.model_label(model)
        series = self._usage_series.get(label)
        if series is None:
            series = self._usage_series[label] = (
                self.prompt_tokens.labels(label),
                self.completion_tokens.labels(label),
            )
        series[0].inc(usage.prompt_tokens)
        series[1].inc(usage.completion_tokens)
        cached = getattr(usage, "cached_tokens", 0)
        if cached:
            self.cached_prompt_tokens.labels(label).inc(cached)

    def observe_model_load(self, backend: str, seconds: float, *, ok: bool) -> None:
        if self.enabled:
            self.model_loads.labels(backend, "ok" if ok else "failed").inc()
            self.model_load_duration.labels(backend).observe(seconds)

    def observe_model_unload(self, backend: str, reason: str) -> None:
        if self.enabled:
            self.model_unloads.labels(backend, reason).inc()

    def exposition(self) -> bytes:
        """The text format of every series (the body of ``GET /metrics``)."""
        return generate_latest(self.registry)

    def token_clock(self, model: str, started: float, now: Callable[[], float]) -> TokenClock:
        """A recorder of one generation's first-token and inter-token times."""
        return TokenClock(self, self.model_label(model), started, now)


class TokenClock:
    """Times one generation's content events as its consumer receives them.

    The first content event observes TTFT (since the request's arrival). After that, a batch of n content
    events received at time t observes (t - t_previous) / n, n times: events that were already buffered when
    the consumer came for them did arrive within that interval, and the per-token mean is what a reader of the
    histogram wants.
    """

    __slots__ = ("_itl", "_label", "_last", "_metrics", "_now", "_started")

    def __init__(self, metrics: Metrics, label: str, started: float, now: Callable[[], float]) -> None:
        self._metrics = metrics
        self._label = label
        self._started = started
        self._now = now
        self._last: float | None = None
        #: The inter-token histogram of this model, looked up once (``labels()`` per token was a cost).
        self._itl: Histogram | None = None

    def content(self, count: int) -> None:
        """``count`` content events have just been received."""
        if count <= 0 or not self._metrics.enabled:
            return
        now = self._now()
        if self._last is None:
            self._metrics.ttft.labels(self._label).observe(now - self._started)
            count -= 1
        elif count:
            interval = (now - self._last) / count
            histogram = self._itl
            if histogram is None:
                histogram = self._itl = self._metrics.itl.labels(self._label)
            for _ in range(count):
                histogram.observe(interval)
        self._last = now


class _BackendCollector(Collector):
    """Per-backend gauges read at scrape time from admission, readiness and the breaker."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("trinfer_queue_depth", "Requests waiting for a slot.", labels=["backend"])
        active = GaugeMetricFamily("trinfer_active_generations", "Generations holding a slot.", labels=["backend"])
        ready = GaugeMetricFamily("trinfer_backend_ready", "1 when the backend is ready.", labels=["backend"])
        breaker = GaugeMetricFamily(
            "trinfer_breaker_open", "1 while the backend's circuit breaker is open.", labels=["backend"]
        )
        loaded = GaugeMetricFamily(
            "trinfer_model_loaded", "1 while a managed model is loaded (loading and unloading count).",
            labels=["backend"],
        )  # fmt: skip
        total = GaugeMetricFamily(
            "trinfer_models_loaded", "Managed models loaded now (what max_loaded_models bounds)."
        )
        count = 0
        for handle in self._router.handles:
            if isinstance(handle.backend, ManagedModel):
                holding = handle.backend.state.value in ("loading", "ready", "unloading")
                loaded.add_metric([handle.name], 1.0 if holding else 0.0)
                count += holding
            stats = handle.admission.statistics()
            depth.add_metric([handle.name], stats.queued)
            active.add_metric([handle.name], stats.active)
            ready.add_metric([handle.name], 1.0 if handle.backend.ready() else 0.0)
            breaker.add_metric([handle.name], 1.0 if handle.breaker.snapshot()["state"] == "open" else 0.0)
        total.add_metric([], count)
        yield from (depth, active, ready, breaker, loaded, total)
