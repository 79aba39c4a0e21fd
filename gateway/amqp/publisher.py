"""The outbox publisher: drains ``gateway.amqp.outbox`` to the broker with confirms, in order.

Theory of operation
-------------------
A ``ConnectionLoop`` of its own (one connection, one channel in confirm mode). When the channel is
ready it pages through the outbox by id (``pending(limit, after=last id sent)``) and publishes
every row persistently, keeping at most ``window`` unconfirmed. Confirms (single or multiple) map
publish sequence numbers back to row ids, which are then deleted (``mark_sent``). It is woken by
``Outbox.add`` in this process and polls every ``poll_s`` for rows added by other processes (the
CLI).

While the broker is away nothing is deleted, so rows wait in SQLite; on reconnect the cursor
starts again at the oldest row, so they go out in id order. A row whose confirm was lost with
the connection goes out again with the same ``message_id`` (at-least-once delivery). A negative
confirm (the broker could not store a message) drops the connection so that everything
unconfirmed is sent again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pika
from pika import spec
from pika.channel import Channel
from prometheus_client import Gauge

from gateway.amqp.connection import AmqpMetrics, ConnectionLoop
from gateway.amqp.outbox import Outbox
from gateway.amqp.topology import DEAD_QUEUE, declare_topology
from gateway.errors import TransientError

if TYPE_CHECKING:
    from gateway.config import AmqpSettings

DEAD_SAMPLE_S = 30.0
DEAD_LETTERS = Gauge(
    "posgate_amqp_dead_letters",
    "Messages in posgate.dead (requests dead-lettered: refused identity, poison, our errors)",
)

log = logging.getLogger(__name__)


class OutboxPublisher(ConnectionLoop):
    def __init__(
        self,
        settings: AmqpSettings,
        outbox: Outbox,
        metrics: AmqpMetrics,
        *,
        window: int = 256,
        poll_s: float = 0.5,
        on_up_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(settings, "outbox", on_up_change)
        self._outbox = outbox
        self._metrics = metrics
        self._window = window
        self._poll_s = poll_s
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        # Loop thread only:
        self._ready = False
        self._seq = 0
        self._after = 0
        self._inflight: dict[int, int] = {}
        self._timer: object | None = None
        self._dead_sampled = float("-inf")

    def start(self) -> None:
        self._outbox.subscribe(self.wake)
        super().start()

    def request_stop(self) -> None:
        self._outbox.unsubscribe(self.wake)
        super().request_stop()

    def wake(self) -> None:
        """Any thread: something was added; drain soon (coalesced)."""
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        if not self.post(None, self._on_wake):
            with self._wake_lock:
                self._wake_pending = False

    def flush(self, deadline: float) -> bool:
        """Wait until the outbox is empty (True), the deadline passes or the broker is away."""
        while True:
            try:
                if self._outbox.depth() == 0:
                    return True
            except TransientError as exc:
                log.warning("outbox: %s", exc)
                return False
            if time.monotonic() >= deadline or not self.is_up():
                return False
            time.sleep(0.05)

    # -- loop thread ----------------------------------------------------------------------------

    def _setup_channel(self, channel: Channel) -> None:
        channel.confirm_delivery(
            self._on_confirm,
            callback=lambda _frame: declare_topology(
                channel, self.settings.delivery_limit, self._on_ready
            ),
        )

    def _on_ready(self) -> None:
        self._seq = 0
        self._after = 0
        self._inflight.clear()
        self._ready = True
        self._mark_ready()
        self._tick()

    def _on_disconnected(self) -> None:
        self._ready = False
        self._inflight.clear()
        self._timer = None
        self._report_depth()

    def _sample_dead_letters(self) -> None:
        """Depth of ``posgate.dead`` as a gauge (a passive declare), every DEAD_SAMPLE_S."""
        channel = self._channel
        if channel is None or time.monotonic() - self._dead_sampled < DEAD_SAMPLE_S:
            return
        self._dead_sampled = time.monotonic()
        channel.queue_declare(
            DEAD_QUEUE,
            passive=True,
            callback=lambda frame: DEAD_LETTERS.set(frame.method.message_count),
        )

    def _on_idle_tick(self) -> None:
        self._report_depth()

    def _tick(self) -> None:
        self._drain()
        self._report_depth()
        self._sample_dead_letters()
        connection = self._connection
        if connection is not None and self._ready:
            self._timer = connection.ioloop.call_later(self._poll_s, self._tick)

    def _on_wake(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        self._drain()

    def _drain(self) -> None:
        channel = self._channel
        if not self._ready or channel is None or not channel.is_open:
            return
        try:
            while len(self._inflight) < self._window:
                rows = self._outbox.pending(self._window - len(self._inflight), after=self._after)
                if not rows:
                    return
                for row in rows:
                    properties = pika.BasicProperties(
                        content_type=row.content_type,
                        headers=dict(row.headers) or None,
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=row.message_id,
                        correlation_id=row.correlation_id,
                        timestamp=int(row.created_at),
                        app_id="posgate",
                        user_id=self.settings.username,
                    )
                    channel.basic_publish(row.exchange, row.routing_key, row.body, properties)
                    self._seq += 1
                    self._inflight[self._seq] = row.id
                    self._after = row.id
        except TransientError as exc:
            log.warning("outbox: %s; retrying", exc)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            seqs = [s for s in self._inflight if s <= method.delivery_tag]
        else:
            seqs = [method.delivery_tag]
        ids = [self._inflight.pop(s) for s in seqs if s in self._inflight]
        if isinstance(method, spec.Basic.Nack):
            log.warning("outbox: broker refused %d message(s); reconnecting to resend", len(ids))
            self._close_connection()
            return
        try:
            self._outbox.mark_sent(ids)
        except TransientError as exc:
            # Rows stay and go out again after the next reconnect (at least once).
            log.warning("outbox: %s", exc)
        self._drain()

    def _report_depth(self) -> None:
        try:
            self._metrics.set_outbox_depth(self._outbox.depth())
        except TransientError as exc:
            log.warning("outbox: %s", exc)
