"""One RabbitMQ connection owned by one thread, kept open with capped exponential backoff.

Theory of operation
-------------------
pika objects are not thread-safe, so each ``ConnectionLoop`` creates its ``SelectConnection`` and
its IOLoop inside its own thread, and every pika call is made from that thread. Other threads
talk to it only through ``post``, which hands a callable to the IOLoop's
``add_callback_threadsafe`` (SelectConnection's spelling of ``connection.add_callback_threadsafe``)
and refuses when the connection it was meant for is gone: each connection attempt has a new
*generation* number, and an ack computed for deliveries of an old connection must never reach a
new one (the broker has already requeued those deliveries).

The thread loops: connect, open one channel, let the subclass set it up (topology, confirms,
consumers), run the IOLoop until the connection closes for any reason, then wait
``min(max_backoff_s, 0.5 s x 2^n)`` (with jitter; reset after a connection that got ready) and try
again, until ``request_stop``. Broker errors never leave the thread: they are logged and retried,
so the daemon keeps running while the broker is away. ``is_up`` is true only while the channel is
fully set up.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pika.exceptions
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel
from pika.connection import Connection

from gateway.amqp.topology import connection_parameters

if TYPE_CHECKING:
    from gateway.config import AmqpSettings

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.5
_SETUP_REPLY_CODES = {403: "ACCESS_REFUSED", 404: "NOT_FOUND", 406: "PRECONDITION_FAILED"}


class AmqpMetrics(Protocol):
    """Hook the AMQP adapter reports to (Prometheus in the daemon, a fake in tests)."""

    def set_up(self, up: bool) -> None: ...

    def observe_request(self, type_label: str, outcome: str, seconds: float) -> None: ...

    def set_outbox_depth(self, depth: int) -> None: ...


class NullMetrics:
    def set_up(self, up: bool) -> None:
        pass

    def observe_request(self, type_label: str, outcome: str, seconds: float) -> None:
        pass

    def set_outbox_depth(self, depth: int) -> None:
        pass


class ConnectionLoop(abc.ABC):
    """Base of the request consumer and the outbox publisher; subclasses set up the channel."""

    def __init__(
        self,
        settings: AmqpSettings,
        role: str,
        on_up_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self._on_up_change = on_up_change
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ioloop: IOLoop | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._up = False
        self._crashed = False
        # Owned by the loop thread:
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._became_ready = False
        self._failed_attempts = 0
        """Connection attempts failed in a row: only the first of an outage is logged loudly."""

    # -- any thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"amqp-{self.role}", daemon=True)
        self._thread.start()

    def is_up(self) -> bool:
        return self._up

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._crashed

    def post(self, generation: int | None, callback: Callable[[], None]) -> bool:
        """Run ``callback`` on the loop thread, if connection ``generation`` (None: any) is open."""
        with self._lock:
            if self._ioloop is None:
                return False
            if generation is not None and generation != self._generation:
                return False
            self._ioloop.add_callback_threadsafe(callback)
            return True

    def request_stop(self) -> None:
        """Close the connection (gracefully) and end the thread; no reconnect after this."""
        self._stop.set()
        self.post(None, self._close_connection)

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            return not self._thread.is_alive()
        return True

    # -- hooks for subclasses (loop thread) ---------------------------------------------------

    @abc.abstractmethod
    def _setup_channel(self, channel: Channel) -> None:
        """Declare, subscribe, ...; call ``_mark_ready()`` when done."""

    def _on_disconnected(self) -> None:
        """The connection is gone: forget per-connection state (optional hook)."""
        return None

    def _on_idle_tick(self) -> None:
        """Called about once a second while waiting to reconnect (optional hook)."""
        return None

    # -- loop thread ----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def _mark_ready(self) -> None:
        self._became_ready = True
        self._set_up(True)

    def _set_up(self, up: bool) -> None:
        if self._up != up:
            self._up = up
            if self._on_up_change is not None:
                self._on_up_change()

    def _run(self) -> None:
        backoff = INITIAL_BACKOFF_S
        try:
            while not self._stop.is_set():
                ready = self._connect_and_serve()
                if self._stop.is_set():
                    break
                if ready:
                    backoff = INITIAL_BACKOFF_S
                delay = min(self.settings.max_backoff_s, backoff) * random.uniform(0.8, 1.0)
                log.debug("amqp %s: reconnecting in %.1f s", self.role, delay)
                self._wait(delay)
                backoff = min(backoff * 2.0, max(self.settings.max_backoff_s, INITIAL_BACKOFF_S))
        except BaseException:
            self._crashed = True
            log.exception("amqp %s: connection thread failed", self.role)
            raise
        finally:
            self._set_up(False)
        log.info("amqp %s: stopped", self.role)

    def _wait(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(1.0, left))
            try:
                self._on_idle_tick()
            except Exception:
                log.exception("amqp %s: idle tick failed", self.role)

    def _connect_and_serve(self) -> bool:
        self._became_ready = False
        try:
            params = connection_parameters(self.settings, self.role)
        except (ValueError, TypeError) as exc:
            log.error("amqp %s: bad broker URL %r: %s", self.role, self.settings.url, exc)
            return False
        ioloop = IOLoop()
        connection = SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=ioloop,
        )
        self._connection = connection
        with self._lock:
            self._generation += 1
            self._ioloop = ioloop
        if self._stop.is_set():
            ioloop.add_callback_threadsafe(self._close_connection)
        try:
            try:
                ioloop.start()
            except Exception:
                log.exception("amqp %s: callback failed; dropping the connection", self.role)
                self._abort(connection, ioloop)
        finally:
            with self._lock:
                self._ioloop = None
                self._generation += 1
            self._connection = None
            self._channel = None
            self._set_up(False)
            try:
                self._on_disconnected()
            finally:
                ioloop.close()
        return self._became_ready

    def _abort(self, connection: SelectConnection, ioloop: IOLoop) -> None:
        """After a failing callback: close what is still open, bounded in time."""
        if connection.is_closed:
            return
        try:
            if not connection.is_closing:
                connection.close(320, "posgate internal error")
            ioloop.call_later(5.0, ioloop.stop)
            ioloop.start()
        except Exception:
            log.exception("amqp %s: could not close the connection cleanly", self.role)

    def _on_open(self, connection: Connection) -> None:
        if self._failed_attempts:
            log.info(
                "amqp %s: connected to %s after %d failed attempt(s)",
                self.role,
                _where(self.settings.url),
                self._failed_attempts,
            )
        else:
            log.info("amqp %s: connected to %s", self.role, _where(self.settings.url))
        self._failed_attempts = 0
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: Connection, error: BaseException) -> None:
        level = logging.INFO if self._stop.is_set() else logging.WARNING
        if isinstance(
            error,
            pika.exceptions.ProbableAuthenticationError
            | pika.exceptions.AuthenticationError
            | pika.exceptions.ProbableAccessDeniedError,
        ):
            level = logging.ERROR
        elif self._failed_attempts:
            level = logging.DEBUG  # still down: the state has not changed since the first line
        self._failed_attempts += 1
        log.log(
            level,
            "amqp %s: cannot connect to %s: %s",
            self.role,
            _where(self.settings.url),
            _describe(error),
        )
        self._stop_ioloop()

    def _on_closed(self, connection: Connection, reason: BaseException) -> None:
        self._channel = None
        self._set_up(False)
        if self._stop.is_set():
            log.info("amqp %s: connection closed", self.role)
        else:
            log.warning("amqp %s: connection lost: %s", self.role, _describe(reason))
        self._stop_ioloop()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        self._setup_channel(channel)

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if self._channel is channel:
            self._channel = None
        self._set_up(False)
        code = getattr(reason, "reply_code", None)
        if code in _SETUP_REPLY_CODES:
            log.error(
                "amqp %s: broker closed the channel: %s (check the topology and the"
                " user's permissions)",
                self.role,
                _describe(reason),
            )
        elif not self._stop.is_set():
            log.warning("amqp %s: channel closed: %s", self.role, _describe(reason))
        # One channel per connection: without it the connection is useless, start over.
        self._close_connection()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.is_closed:
            self._stop_ioloop()
        elif not connection.is_closing:
            connection.close()

    def _stop_ioloop(self) -> None:
        connection = self._connection
        if connection is not None:
            connection.ioloop.stop()


def _where(url: str) -> str:
    """The URL without any user info, for logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"
