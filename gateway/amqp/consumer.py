"""The request consumer: deliveries in, handlers on a worker pool, replies and acks back out.

Theory of operation
-------------------
The consumer is a ``ConnectionLoop``: its thread owns the connection and the one channel, in
transaction mode with ``basic_qos(prefetch)``. Each delivery is copied into a plain
``Delivery`` and handed to a pool of worker threads that run ``Dispatcher.dispatch`` (identity,
redelivery, handler). The worker never touches pika: it posts the ``Outcome`` back to the loop
thread with ``post`` (``add_callback_threadsafe``), tagged with the connection generation it came
from; an outcome for a connection that is gone is dropped, since the broker has requeued that
delivery and the processed-request record will answer it.

On the loop thread every settlement goes into an AMQP transaction (``tx.select`` on the
channel): the reply is published to ``reply_to`` (default exchange, persistent, ``mandatory``,
``correlation_id`` of the request, ``user_id`` of posgate so firms can trust it) and the request
is acked (or dead-lettered, or requeued) in the same transaction, and ``tx.commit`` makes both
happen together. Settlements that arrive while a commit is open wait and go into the next one,
so commits group themselves under load. This is what makes replies exactly-once across
connection losses: if the connection drops before the commit reaches the broker, neither the
reply nor the ack happened and the request is redelivered, to be answered from the processed
record; if the commit got there, both happened and the request never comes back. (Publisher
confirms cannot do this: a reply stored by the broker whose confirm was lost with the connection
would be sent a second time.) A requeue after a transient failure waits on a loop timer, so a
backing-off request holds its prefetch slot but no worker thread.

A reply to a direct reply-to address is the exception: the worker publishes it through a
``DirectReplySender`` (a connection of its own) before posting the outcome, because a forged
address makes the broker close the connection it was published on.

Stopping: ``stop_intake`` cancels the consumers (no new deliveries), requeues backing-off requests
at once, and lets queued-but-unstarted work fall through untouched (the broker requeues it when
the channel closes); ``wait_idle`` waits for running handlers and their commits; then the
connection is closed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pika
from pika import spec
from pika.channel import Channel

from gateway.amqp.connection import AmqpMetrics, ConnectionLoop
from gateway.amqp.direct_reply import DirectReplySender, Sent, is_direct_reply_to
from gateway.amqp.dispatch import Action, Delivery, Dispatcher, Outcome
from gateway.amqp.topology import declare_topology

if TYPE_CHECKING:
    from gateway.config import AmqpSettings

log = logging.getLogger(__name__)


class WorkerPool:
    """Daemon threads running submitted callables (a stuck handler never blocks process exit)."""

    def __init__(self, size: int, name: str) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, size))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                work()
            except Exception:
                log.exception("worker task failed")


def reply_properties(delivery: Delivery, outcome: Outcome, user: str) -> pika.BasicProperties:
    """Persistent, with the request's correlation id and posgate's broker-checked user id."""
    reply = outcome.reply
    return pika.BasicProperties(
        content_type=reply.content_type if reply is not None else None,
        correlation_id=delivery.correlation_id,
        message_id=f"reply-{outcome.key[:32]}" if outcome.key else None,
        delivery_mode=pika.DeliveryMode.Persistent,
        timestamp=int(time.time()),
        type=f"{outcome.type_label}.reply",
        app_id="posgate",
        user_id=user,
        headers={"posgate-outcome": outcome.outcome},
    )


@dataclass
class _Settlement:
    """What to do with one delivery: publish its reply (if any) and ack/reject/requeue it."""

    tag: int
    delivery: Delivery
    outcome: Outcome
    received: float


class RequestConsumer(ConnectionLoop):
    def __init__(
        self,
        settings: AmqpSettings,
        queues: Sequence[str],
        dispatcher: Dispatcher,
        metrics: AmqpMetrics,
        *,
        role: str,
        pool_size: int,
        on_up_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(settings, role, on_up_change)
        self.queues = list(queues)
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._pool_size = pool_size
        self._pool: WorkerPool | None = None
        self._direct = DirectReplySender(settings, role)
        self._intake_stopped = threading.Event()
        self._busy = 0
        self._busy_cv = threading.Condition()
        # Loop thread only:
        self._consumer_tags: list[str] = []
        self._queued: list[_Settlement] = []
        self._committing: list[_Settlement] | None = None
        self._retries: dict[int, tuple[Any, Callable[[], None]]] = {}

    # -- any thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._pool = WorkerPool(self._pool_size, f"amqp-{self.role}-worker")
        super().start()

    def stop_intake(self) -> None:
        self._intake_stopped.set()
        self.post(None, self._cancel_consumers)

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no handler runs and nothing awaits its commit; False at the deadline."""
        with self._busy_cv:
            while self._busy > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._busy_cv.wait(left)
        # Outcomes posted by the workers run on the loop before this barrier (callbacks are FIFO).
        barrier = threading.Event()
        if self.post(None, barrier.set):
            while not barrier.wait(0.02):
                if time.monotonic() >= deadline:
                    return False
                if not self.is_up():
                    return True  # the connection is gone: nothing more can be settled
        while self._queued or self._committing is not None or self._retries:
            if time.monotonic() >= deadline:
                return False
            if not self.is_up():
                return True
            time.sleep(0.01)
        return True

    def shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self._direct.stop()

    # -- loop thread ----------------------------------------------------------------------------

    def _setup_channel(self, channel: Channel) -> None:
        channel.add_on_return_callback(self._on_return)
        channel.add_on_cancel_callback(self._on_broker_cancel)
        channel.tx_select(
            callback=lambda _frame: declare_topology(
                channel, self.settings.delivery_limit, lambda: self._set_qos(channel)
            )
        )

    def _set_qos(self, channel: Channel) -> None:
        channel.basic_qos(
            prefetch_count=self.settings.prefetch,
            callback=lambda _frame: self._start_consuming(channel),
        )

    def _start_consuming(self, channel: Channel) -> None:
        if self._intake_stopped.is_set() or not channel.is_open:
            return
        for name in self.queues:
            tag = channel.basic_consume(name, self._on_message, auto_ack=False)
            self._consumer_tags.append(tag)
        log.info("amqp %s: consuming %s", self.role, ", ".join(self.queues))
        self._mark_ready()

    def _on_disconnected(self) -> None:
        self._consumer_tags.clear()
        self._queued.clear()
        self._committing = None
        self._retries.clear()

    def _cancel_consumers(self) -> None:
        channel = self._channel
        if channel is not None and channel.is_open:
            for tag in self._consumer_tags:
                channel.basic_cancel(tag)
        self._consumer_tags.clear()
        connection = self._connection
        for timer, fire in list(self._retries.values()):
            if connection is not None:
                connection.ioloop.remove_timeout(timer)
            fire()

    def _on_message(
        self,
        channel: Channel,
        method: spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        received = time.monotonic()
        headers: dict[str, Any] = dict(properties.headers or {})
        try:
            delivery_count = int(headers.get("x-delivery-count", 0) or 0)
        except (TypeError, ValueError):
            delivery_count = 0
        delivery = Delivery(
            routing_key=method.routing_key or "",
            body=body,
            user_id=properties.user_id,
            type=properties.type,
            content_type=properties.content_type,
            message_id=properties.message_id,
            correlation_id=properties.correlation_id,
            reply_to=properties.reply_to,
            headers=headers,
            delivery_count=delivery_count,
        )
        generation = self.generation
        assert self._pool is not None
        with self._busy_cv:
            self._busy += 1
        self._pool.submit(
            functools.partial(self._work, generation, method.delivery_tag, delivery, received)
        )

    def _work(self, generation: int, tag: int, delivery: Delivery, received: float) -> None:
        """Worker thread: dispatch, then hand the outcome back to the loop thread."""
        try:
            if self._intake_stopped.is_set():
                return  # not started: the broker requeues it when the channel closes
            try:
                outcome = self._dispatcher.dispatch(delivery)
            except Exception:
                # Not the handler (the dispatcher catches those): e.g. the record is unreadable.
                # Requeue with backoff; the delivery limit dead-letters it if it keeps failing.
                log.exception("amqp %s: dispatch failed; requeueing", self.role)
                outcome = Outcome(
                    Action.RETRY,
                    "error",
                    self._dispatcher.type_label(None),
                    retry_after_s=min(self.settings.max_backoff_s, 1.0),
                )
            outcome = self._send_direct_reply(delivery, outcome)
            settle = functools.partial(self._settle, generation, tag, delivery, outcome, received)
            if not self.post(generation, settle):
                log.debug(
                    "amqp %s: connection gone before the outcome of %s could be sent;"
                    " the broker redelivers it",
                    self.role,
                    delivery.message_id,
                )
        finally:
            with self._busy_cv:
                self._busy -= 1
                self._busy_cv.notify_all()

    def _send_direct_reply(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        """A reply to a direct reply-to address goes out here, never on the request channel.

        Sent: only the ack (or dead-lettering) of the request is left for the loop. Refused by
        the broker: the request is dead-lettered, unanswered. Broker away: retried later.
        """
        reply = outcome.reply
        if (
            outcome.action not in (Action.REPLY_ACK, Action.REPLY_REJECT)
            or reply is None
            or not delivery.reply_to
            or not is_direct_reply_to(delivery.reply_to)
        ):
            return outcome
        sent = self._direct.send(
            delivery.reply_to,
            reply.body,
            reply_properties(delivery, outcome, self.settings.username),
            timeout=max(5.0, self.settings.request_timeout_s),
        )
        if sent is Sent.OK:
            action = Action.ACK if outcome.action is Action.REPLY_ACK else Action.REJECT
            return dataclasses.replace(outcome, action=action)
        if sent is Sent.REFUSED:
            log.warning(
                "amqp %s: request dead-lettered: the broker refused its reply_to %r: message_id=%s",
                self.role,
                delivery.reply_to,
                delivery.message_id,
            )
            return dataclasses.replace(outcome, action=Action.REJECT, outcome="bad_reply_to")
        return dataclasses.replace(
            outcome,
            action=Action.RETRY,
            outcome="retry",
            retry_after_s=min(self.settings.max_backoff_s, 1.0),
        )

    def _settle(
        self, generation: int, tag: int, delivery: Delivery, outcome: Outcome, received: float
    ) -> None:
        channel = self._channel
        if generation != self.generation or channel is None or not channel.is_open:
            return
        settlement = _Settlement(tag, delivery, outcome, received)
        if outcome.action is Action.RETRY and not self._intake_stopped.is_set():
            fire = functools.partial(self._release_retry, generation, settlement)
            assert self._connection is not None
            timer = self._connection.ioloop.call_later(outcome.retry_after_s, fire)
            self._retries[tag] = (timer, fire)
            return
        self._queued.append(settlement)
        self._flush()

    def _release_retry(self, generation: int, settlement: _Settlement) -> None:
        self._retries.pop(settlement.tag, None)
        if generation != self.generation:
            return
        self._queued.append(settlement)
        self._flush()

    def _flush(self) -> None:
        """Send every queued settlement in one transaction, unless a commit is still open."""
        channel = self._channel
        if self._committing is not None or not self._queued:
            return
        if channel is None or not channel.is_open:
            return
        batch, self._queued = self._queued, []
        for settlement in batch:
            self._apply(channel, settlement)
        self._committing = batch
        channel.tx_commit(callback=self._on_commit_ok)

    def _apply(self, channel: Channel, settlement: _Settlement) -> None:
        tag, delivery, outcome = settlement.tag, settlement.delivery, settlement.outcome
        action = outcome.action
        if action is Action.RETRY:
            channel.basic_nack(tag, requeue=True)
            return
        if action is Action.REJECT:
            channel.basic_reject(tag, requeue=False)
            return
        reply = outcome.reply
        if action is not Action.ACK and reply is not None and delivery.reply_to:
            properties = reply_properties(delivery, outcome, self.settings.username)
            try:
                channel.basic_publish("", delivery.reply_to, reply.body, properties, mandatory=True)
            except Exception as exc:  # e.g. a reply_to pika cannot encode
                log.warning(
                    "amqp %s: cannot send the reply to %r: %s", self.role, delivery.reply_to, exc
                )
        if action is Action.REPLY_REJECT:
            channel.basic_reject(tag, requeue=False)
        else:
            channel.basic_ack(tag)

    def _on_commit_ok(self, _frame: Any) -> None:
        batch, self._committing = self._committing or [], None
        for settlement in batch:
            self._record(settlement.outcome, settlement.received)
        self._flush()

    def _record(self, outcome: Outcome, received: float) -> None:
        self._metrics.observe_request(
            outcome.type_label, outcome.outcome, time.monotonic() - received
        )

    def _on_return(
        self,
        channel: Channel,
        method: spec.Basic.Return,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        log.warning(
            "amqp %s: reply to %r was not delivered: %s %s (no such queue?)",
            self.role,
            method.routing_key,
            method.reply_code,
            method.reply_text,
        )

    def _on_broker_cancel(self, frame: Any) -> None:
        if self._intake_stopped.is_set():
            return
        log.warning(
            "amqp %s: the broker cancelled a consumer (queue deleted?); reconnecting", self.role
        )
        self._close_connection()
