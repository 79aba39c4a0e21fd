"""The RabbitMQ adapter of posgate: ``AmqpService``, its metrics and its public types.

Theory of operation
-------------------
``AmqpService`` is one daemon component made of two connections, each in its own thread:

* the request consumer (``gateway.amqp.consumer``) consumes the request queues, runs handlers on
  a worker pool through the ``Dispatcher`` (``gateway.amqp.dispatch``: identity, redelivery,
  errors) and publishes each reply and acks its request in one AMQP transaction;
* the outbox publisher (``gateway.amqp.publisher``), present when an ``Outbox`` is given, sends
  what pipelines queued with ``Outbox.emit``/``add``.

Both declare the topology (``gateway.amqp.topology``) on every connect and reconnect forever with
capped backoff, so the daemon keeps running while the broker is away; ``is_up`` (and the gauge
``posgate_amqp_up``) says whether both are connected. ``stop`` stops intake first (cancels the
consumers), lets running handlers finish and their replies be committed, gives the outbox the rest
of the grace period to drain, then closes both connections.

``posgate serve`` consumes ``posgate.requests`` plus the queue of every compute type it has a
handler for; ``posgate worker`` (``gateway.worker``) builds the same service over the compute
queues of its types only, without an outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from gateway.amqp.connection import AmqpMetrics, NullMetrics
from gateway.amqp.consumer import RequestConsumer
from gateway.amqp.dispatch import (
    INTERNAL_ERROR,
    MALFORMED,
    UNKNOWN_TYPE,
    Dispatcher,
    Handler,
    Reply,
    Request,
)
from gateway.amqp.outbox import MemoryProcessedStore, Outbox, ProcessedStore
from gateway.amqp.publisher import OutboxPublisher
from gateway.amqp.topology import COMPUTE_TYPES, queues_for_worker, queues_to_serve
from gateway.config import AmqpSettings
from gateway.metrics import SECONDS_BUCKETS

__all__ = [
    "AmqpMetrics",
    "AmqpService",
    "AmqpSettings",
    "COMPUTE_TYPES",
    "Handler",
    "INTERNAL_ERROR",
    "MALFORMED",
    "NullMetrics",
    "PrometheusAmqpMetrics",
    "Reply",
    "Request",
    "UNKNOWN_TYPE",
]

log = logging.getLogger(__name__)

WORKER_POOL_SIZE = 2
"""Handler threads of a ``posgate worker``: its compute handlers hold the GIL while they run, so
more threads add no throughput, only thread switches, and answer requests out of their order
(measured: about a tenth more CPU per what-if request with 32 threads than with 1 or 2)."""

AMQP_UP = Gauge("posgate_amqp_up", "1 while every AMQP connection of this process is set up")
AMQP_REQUESTS = Counter(
    "posgate_amqp_requests_total",
    "AMQP requests settled, by type and outcome",
    ["type", "outcome"],
)
AMQP_REQUEST_SECONDS = Histogram(
    "posgate_amqp_request_seconds",
    "From delivery to the committed reply and ack of one AMQP request",
    ["type"],
    buckets=SECONDS_BUCKETS,
)
OUTBOX_DEPTH = Gauge("posgate_outbox_depth", "Outbox messages not yet confirmed by the broker")


class PrometheusAmqpMetrics:
    """Reports to the module-level metrics in the default registry. The labelled children are
    looked up once per (type, outcome) and kept: a look-up takes a lock and builds a key."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def set_up(self, up: bool) -> None:
        AMQP_UP.set(1 if up else 0)

    def observe_request(self, type_label: str, outcome: str, seconds: float) -> None:
        children = self._children.get((type_label, outcome))
        if children is None:
            children = (
                AMQP_REQUESTS.labels(type=type_label, outcome=outcome),
                AMQP_REQUEST_SECONDS.labels(type=type_label),
            )
            self._children[(type_label, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def set_outbox_depth(self, depth: int) -> None:
        OUTBOX_DEPTH.set(depth)


class AmqpService:
    """The AMQP component: ``start``, ``stop(timeout)``, ``healthy``, ``is_up``."""

    name = "amqp"

    def __init__(
        self,
        settings: AmqpSettings,
        identities: Callable[[], Mapping[str, str]],
        handlers: Mapping[str, Handler],
        outbox: Outbox | None = None,
        processed: ProcessedStore | None = None,
        metrics: AmqpMetrics | None = None,
        *,
        queues: Sequence[str] | None = None,
        role: str = "serve",
        pool_size: int | None = None,
    ) -> None:
        self.settings = settings
        self._metrics: AmqpMetrics = metrics if metrics is not None else PrometheusAmqpMetrics()
        self._dispatcher = Dispatcher(
            handlers,
            identities,
            processed if processed is not None else MemoryProcessedStore(),
            max_backoff_s=settings.max_backoff_s,
            slow_s=settings.request_timeout_s,
        )
        self.queues = list(queues) if queues is not None else queues_to_serve(handlers)
        self._consumer = RequestConsumer(
            settings,
            self.queues,
            self._dispatcher,
            self._metrics,
            role=role,
            pool_size=pool_size or max(1, min(settings.prefetch, 32)),
            on_up_change=self._up_changed,
        )
        self._publisher = (
            OutboxPublisher(settings, outbox, self._metrics, on_up_change=self._up_changed)
            if outbox is not None
            else None
        )
        self._started = False
        self.stopped_cleanly: bool | None = None
        self._metrics.set_up(False)

    @classmethod
    def for_worker(
        cls,
        settings: AmqpSettings,
        identities: Callable[[], Mapping[str, str]],
        handlers: Mapping[str, Handler],
        metrics: AmqpMetrics | None = None,
        *,
        pool_size: int | None = None,
    ) -> AmqpService:
        """A ``posgate worker``'s service: the compute queues of its types, no outbox.

        Raises ``ValueError`` when a type is not a compute type (it would never arrive).
        ``pool_size`` defaults to ``WORKER_POOL_SIZE`` (at most ``prefetch``).
        """
        return cls(
            settings,
            identities,
            handlers,
            None,
            MemoryProcessedStore(),
            metrics,
            queues=queues_for_worker(handlers),
            role="worker",
            pool_size=pool_size or max(1, min(settings.prefetch, WORKER_POOL_SIZE)),
        )

    def start(self) -> None:
        if not self.settings.enabled:
            log.info("amqp: disabled in the configuration")
            return
        self._started = True
        if self._publisher is not None:
            self._publisher.start()
        self._consumer.start()

    def stop(self, timeout: float) -> None:
        """Stop intake, finish in-flight requests, drain the outbox, close; within ``timeout``."""
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        self._consumer.stop_intake()
        idle = self._consumer.wait_idle(deadline)
        if not idle:
            log.warning("amqp: requests still in flight at the deadline; the broker requeues them")
        self._consumer.request_stop()
        self._consumer.join(deadline - time.monotonic())
        self._consumer.shutdown_pool()
        drained = True
        if self._publisher is not None:
            drained = self._publisher.flush(deadline)
            if not drained:
                log.info("amqp: outbox not empty at stop; it is sent after the next start")
            self._publisher.request_stop()
            self._publisher.join(max(1.0, deadline - time.monotonic()))
        self._started = False
        self.stopped_cleanly = idle and drained
        self._metrics.set_up(False)

    def healthy(self) -> bool:
        """True while the connection threads run (the broker may be away: that is not unhealthy)."""
        if not self._started:
            return True
        return self._consumer.is_alive() and (self._publisher is None or self._publisher.is_alive())

    def is_up(self) -> bool:
        if not self._started:
            return False
        return self._consumer.is_up() and (self._publisher is None or self._publisher.is_up())

    def _up_changed(self) -> None:
        self._metrics.set_up(self.is_up())
