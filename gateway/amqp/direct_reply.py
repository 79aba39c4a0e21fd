"""Replies to RabbitMQ direct reply-to addresses, on a connection of their own.

Theory of operation
-------------------
A direct reply-to address (``amq.rabbitmq.reply-to.<pid>.<key>``) names a channel of the
requester, encoded by the broker. A firm can write any text there; RabbitMQ decodes it when a
message is published to it, and an address it cannot decode (or whose channel never existed)
crashes the publishing channel with a connection-level ``541 INTERNAL_ERROR``. No check of the
text can tell a forged address from a real one (a well-formed address naming a gone channel
crashes too), so such replies never go out on the request connection that every firm's requests
share: they are published here, one at a time, on a connection of this sender's own thread, with
publisher confirms. When the broker closes that connection after a publish, the address is
judged forged: only that request is dead-lettered, and the next direct reply opens a new
connection. When the connection cannot be opened at all, the broker is away: the request is
retried later like any other transient failure.

A direct reply is published before its request is acked (it cannot share the request channel's
AMQP transaction); a connection lost between the two makes the redelivered request answered a
second time from the processed-request record. The requester's channel is transient anyway:
durable exactly-once replies need a ``reply.<user>`` queue.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

import pika
import pika.exceptions

from gateway.amqp.topology import connection_parameters

if TYPE_CHECKING:
    from gateway.config import AmqpSettings

log = logging.getLogger(__name__)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def is_direct_reply_to(reply_to: str) -> bool:
    return reply_to == DIRECT_REPLY_TO or reply_to.startswith(DIRECT_REPLY_TO + ".")


class Sent(enum.Enum):
    OK = "ok"
    REFUSED = "refused"
    """The broker closed the connection after the publish: a forged or stale address."""
    UNREACHABLE = "unreachable"
    """No connection to the broker: retry later."""


_Job = tuple[str, bytes, pika.BasicProperties, "Future[Sent]"]


class DirectReplySender:
    """Publishes replies to direct reply-to addresses from its own thread and connection."""

    def __init__(self, settings: AmqpSettings, role: str) -> None:
        self._settings = settings
        self._role = role
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(
        self, reply_to: str, body: bytes, properties: pika.BasicProperties, timeout: float
    ) -> Sent:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"amqp-{self._role}-direct-reply", daemon=True
                )
                self._thread.start()
        done: Future[Sent] = Future()
        self._jobs.put((reply_to, body, properties, done))
        try:
            return done.result(timeout)
        except TimeoutError:
            return Sent.UNREACHABLE

    def stop(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)

    def _run(self) -> None:
        connection: pika.BlockingConnection | None = None
        channel = None
        while True:
            try:
                job = self._jobs.get(timeout=1.0)
            except queue.Empty:
                if connection is not None:
                    try:
                        connection.process_data_events(0)  # heartbeats
                    except Exception:
                        connection = channel = None
                continue
            if job is None:
                break
            reply_to, body, properties, done = job
            if connection is None or not connection.is_open:
                try:
                    connection = pika.BlockingConnection(
                        connection_parameters(self._settings, f"{self._role}-direct-reply")
                    )
                    channel = connection.channel()
                    channel.confirm_delivery()
                except Exception as exc:
                    log.warning("amqp %s: direct reply connection failed: %s", self._role, exc)
                    connection = channel = None
                    done.set_result(Sent.UNREACHABLE)
                    continue
            assert channel is not None
            try:
                channel.basic_publish("", reply_to, body, properties)
                done.set_result(Sent.OK)
            except (
                pika.exceptions.ConnectionClosedByBroker,
                pika.exceptions.ChannelClosedByBroker,
            ) as exc:
                log.warning(
                    "amqp %s: the broker refused the direct reply-to address %r: %s",
                    self._role,
                    reply_to,
                    exc,
                )
                done.set_result(Sent.REFUSED)
                self._close(connection)
                connection = channel = None
            except Exception as exc:
                log.warning("amqp %s: direct reply to %r failed: %s", self._role, reply_to, exc)
                done.set_result(Sent.UNREACHABLE)
                self._close(connection)
                connection = channel = None
        self._close(connection)

    def _close(self, connection: pika.BlockingConnection | None) -> None:
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:
                log.debug("amqp %s: closing the direct reply connection failed", self._role)
