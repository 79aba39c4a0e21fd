"""Turns one AMQP request into one outcome: who sent it, which handler, what reply, ack or not.

Theory of operation
-------------------
The dispatcher knows nothing of pika. The consumer copies the plain values out of pika's frames
into a ``Delivery``, calls ``Dispatcher.dispatch`` on a worker thread, and gets an ``Outcome``:
what to publish to ``reply_to`` and whether to ack, dead-letter or requeue the request. The checks
run in this order:

1. identity: ``user_id`` (which the broker has checked against the connection's user) must map to
   a firm; a request without one, or from an unmapped user, is dead-lettered and no handler sees
   it. The mapping is read per message, so a SIGHUP reload applies at once. ``reply_to`` must be
   one of the sender's own reply queues (``reply.<user>`` or ``reply.<user>.<anything>``, minus
   what belongs to a longer user name: ``gateway.amqp.reply_to``) or a direct reply-to address,
   so no firm can make posgate write into another firm's queue;
2. redelivery: the request key (firm, type, message id or sha256 of the body) is looked up in the
   ``ProcessedStore``; when found, the stored reply is sent and the handler is not run. The
   consumer publishes a reply and acks its request in one AMQP transaction, so a request that
   comes back had no reply published (the transaction never committed): sending the stored reply
   then is its first and only reply. A firm that sends the same message id again on purpose
   gets the same answer again. A copy that arrives while the first is still being worked on
   (the connection dropped meanwhile) waits for it;
3. shape: the type comes from the routing key ``request.<type>`` (it decides the queue); a ``type``
   property that says otherwise, or a JSON content type with a body that is not JSON, is answered
   ``MALFORMED``; a type without a handler is answered ``UNKNOWN_TYPE``;
4. the handler. ``InputRejected`` becomes an error reply; ``TransientError`` a requeue after a
   backoff that grows with the delivery count (the queue's delivery limit dead-letters poison);
   anything else is our bug: an ``INTERNAL_ERROR`` reply, and the request is dead-lettered for
   the operators.

Every answer that ends a request (reply or error reply) is put in the ``ProcessedStore`` before it
is published, so a crash after the handler ran never runs it twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from engine.errors import InputRejected
from gateway.amqp.outbox import SCHEMA_VERSION, ProcessedStore
from gateway.amqp.reply_to import reply_to_allowed
from gateway.errors import TransientError

log = logging.getLogger(__name__)

REQUEST_PREFIX = "request."
JSON_CONTENT_TYPE = "application/json"

MALFORMED = "MALFORMED"
UNKNOWN_TYPE = "UNKNOWN_TYPE"
INTERNAL_ERROR = "INTERNAL_ERROR"

RETRY_BASE_S = 0.25
"""First requeue backoff; doubled per delivery, capped by ``max_backoff_s``."""


@dataclass(frozen=True)
class Request:
    """What a handler sees: the request of one firm (identity already checked)."""

    type: str
    firm: str
    body: bytes
    content_type: str | None
    message_id: str | None
    correlation_id: str | None
    headers: Mapping[str, object] = field(default_factory=dict)
    parsed: Any = field(default=None, repr=False, compare=False)
    """The body as JSON when the dispatcher has parsed it already (as ``(value,)``), else None."""

    def json(self) -> Any:
        """The body as JSON, or ``InputRejected(MALFORMED)`` naming what is wrong with it."""
        if self.parsed is not None:
            return self.parsed[0]
        return parse_json(self.body)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (a dict), or ``InputRejected(MALFORMED)``."""
        value = self.json()
        if not isinstance(value, dict):
            raise InputRejected(MALFORMED, f"body is a JSON {type(value).__name__}, not an object")
        return value


@dataclass(frozen=True)
class Reply:
    """A handler's answer. A dict is sent as JSON (``schema_version`` added when missing)."""

    body: dict[str, Any] | bytes
    content_type: str | None = None


Handler = Callable[[Request], Reply]


_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else b for b in range(256))
_LONG_NUMBER = b"0" * 19
"""19 digits in a row: a number orjson may read otherwise (an integer past 64 bits becomes a
float there), so such a body is read by the standard library (found with ``bytes.translate``
and a substring search: a regular expression costs more than the parse)."""


def parse_json(body: bytes) -> Any:
    """The body as JSON: the standard library's values and error messages. orjson reads it first
    (a tenth of the time); what orjson refuses (NaN, a lone surrogate, an error to explain) or may
    read otherwise (very long numbers) is read by the standard library."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputRejected(MALFORMED, f"body is not UTF-8 (byte {exc.start})") from None
    if _LONG_NUMBER not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputRejected(
            MALFORMED, f"body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise InputRejected(MALFORMED, "body is not JSON: nested too deeply") from None


def is_json_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    base = content_type.split(";", 1)[0].strip().lower()
    return base == JSON_CONTENT_TYPE or base.endswith("+json")


@dataclass(frozen=True)
class Delivery:
    """The transport-neutral copy of one delivered request."""

    routing_key: str
    body: bytes
    user_id: str | None = None
    type: str | None = None
    content_type: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, object] = field(default_factory=dict)
    delivery_count: int = 0


class Action(Enum):
    ACK = "ack"
    """Done; nothing to send."""
    REPLY_ACK = "reply_ack"
    """Publish the reply to ``reply_to`` and ack, in one transaction (no ``reply_to``: ack)."""
    REPLY_REJECT = "reply_reject"
    """Publish the error reply and dead-letter the request, in one transaction."""
    REJECT = "reject"
    """Dead-letter without a reply."""
    RETRY = "retry"
    """Requeue after ``retry_after_s``."""


@dataclass(frozen=True)
class StoredReply:
    """A reply as published and as kept in the ``ProcessedStore``."""

    outcome: str
    body: bytes
    content_type: str | None

    def encode(self) -> bytes:
        return _stored_head(self.outcome, self.content_type) + self.body

    @classmethod
    def decode(cls, data: bytes) -> StoredReply:
        head, _, body = data.partition(b"\n")
        meta = json.loads(head)
        return cls(outcome=meta["outcome"], body=body, content_type=meta["content_type"])


@functools.lru_cache(maxsize=64)
def _stored_head(outcome: str, content_type: str | None) -> bytes:
    head = json.dumps({"outcome": outcome, "content_type": content_type})
    return head.encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Outcome:
    action: Action
    outcome: str
    """Metric label: ok, rejected, malformed, unknown_type, unauthorized, bad_reply_to, duplicate,
    retry, error."""
    type_label: str
    """Metric label: the request type when it has a handler, else ``unknown``."""
    reply: StoredReply | None = None
    key: str | None = None
    firm: str | None = None
    retry_after_s: float = 0.0


def request_key(firm: str, request_type: str, message_id: str | None, body: bytes) -> str:
    """Identity of a request for redelivery detection: per firm, so firms never collide."""
    ident = f"id:{message_id}" if message_id else f"sha256:{hashlib.sha256(body).hexdigest()}"
    return hashlib.sha256(f"{firm}\x00{request_type}\x00{ident}".encode()).hexdigest()


def error_body(reason: str, message: str) -> bytes:
    doc = {"schema_version": SCHEMA_VERSION, "error": {"reason": reason, "message": message}}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def reply_json(doc: dict[str, Any]) -> bytes:
    """A reply document as compact UTF-8 JSON. orjson writes a what-if reply (a few hundred
    numbers) in a tenth of the time of the standard library; a document orjson refuses (an
    integer past 64 bits, a key that is not a string) goes through the standard library."""
    try:
        return orjson.dumps(doc, default=str)
    except TypeError:
        return json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8")


def encode_reply(reply: Reply) -> StoredReply:
    if isinstance(reply.body, dict):
        doc = dict(reply.body)
        doc.setdefault("schema_version", SCHEMA_VERSION)
        return StoredReply("ok", reply_json(doc), reply.content_type or JSON_CONTENT_TYPE)
    if isinstance(reply.body, bytes | bytearray):
        return StoredReply(
            "ok", bytes(reply.body), reply.content_type or "application/octet-stream"
        )
    raise TypeError(f"Reply.body must be a dict or bytes, not {type(reply.body).__name__}")


class Dispatcher:
    """Runs on worker threads; safe for any number of concurrent ``dispatch`` calls."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        identities: Callable[[], Mapping[str, str]],
        processed: ProcessedStore,
        *,
        max_backoff_s: float,
        slow_s: float | None = None,
    ) -> None:
        self._handlers = dict(handlers)
        self._identities = identities
        self._processed = processed
        self._max_backoff_s = max_backoff_s
        self._slow_s = slow_s
        self._lock = threading.Lock()
        # key -> a lock held while that request runs (cheaper to make than an Event)
        self._inflight: dict[str, threading.Lock] = {}

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def type_label(self, request_type: str | None) -> str:
        return request_type if request_type in self._handlers else "unknown"

    def dispatch(self, d: Delivery) -> Outcome:
        request_type = _request_type(d)
        label = self.type_label(request_type)
        identities = self._identities()  # once per message: the daemon's map is built per call
        firm = self._identify(d, identities)
        if firm is None:
            return Outcome(Action.REJECT, "unauthorized", label)
        if d.reply_to and d.user_id and not reply_to_allowed(d.user_id, d.reply_to, identities):
            log.warning(
                "request dead-lettered: reply_to %r is not a reply queue of user %s: message_id=%s",
                d.reply_to,
                d.user_id,
                d.message_id,
            )
            return Outcome(Action.REJECT, "bad_reply_to", label, firm=firm)
        key = request_key(firm, request_type or "", d.message_id, d.body)
        while True:
            with self._lock:
                busy = self._inflight.get(key)
                if busy is None:
                    mine = threading.Lock()
                    mine.acquire()
                    self._inflight[key] = mine
                    break
            with busy:  # wait for the copy being worked on to finish
                pass
        try:
            return self._dispatch_once(d, firm, request_type, label, key)
        finally:
            with self._lock:
                del self._inflight[key]
            mine.release()

    def _identify(self, d: Delivery, identities: Mapping[str, str]) -> str | None:
        if not d.user_id:
            log.warning(
                "request without user_id dead-lettered: routing_key=%s message_id=%s",
                d.routing_key,
                d.message_id,
            )
            return None
        firm = identities.get(d.user_id)
        if firm is None:
            log.warning(
                "request from unmapped AMQP user dead-lettered: user=%s routing_key=%s"
                " message_id=%s",
                d.user_id,
                d.routing_key,
                d.message_id,
            )
        return firm

    def _dispatch_once(
        self, d: Delivery, firm: str, request_type: str | None, label: str, key: str
    ) -> Outcome:
        try:
            stored = self._processed.get(key)
        except TransientError as exc:
            return self._retry(d, label, key, firm, f"processed-request record: {exc}")
        if stored is not None:
            log.info(
                "redelivered request answered from the record: firm=%s type=%s message_id=%s",
                firm,
                request_type,
                d.message_id,
            )
            reply = StoredReply.decode(stored)
            return Outcome(Action.REPLY_ACK, "duplicate", label, reply, key, firm)

        rejected, parsed = self._check_shape(d, request_type)
        if rejected is not None:
            reason, message = rejected
            log.info(
                "request refused: firm=%s type=%s reason=%s %s", firm, request_type, reason, message
            )
            reply = StoredReply(reason.lower(), error_body(reason, message), JSON_CONTENT_TYPE)
            return self._finish(key, firm, label, reply)

        assert request_type is not None
        request = Request(
            type=request_type,
            firm=firm,
            body=d.body,
            content_type=d.content_type,
            message_id=d.message_id,
            correlation_id=d.correlation_id,
            headers=d.headers,
            parsed=parsed,
        )
        started = time.monotonic()
        try:
            result = self._handlers[request_type](request)
            reply = encode_reply(result)
        except InputRejected as exc:
            log.info(
                "request rejected: firm=%s type=%s reason=%s %s",
                firm,
                request_type,
                exc.reason,
                exc.message,
            )
            reply = StoredReply("rejected", error_body(exc.reason, exc.message), JSON_CONTENT_TYPE)
        except TransientError as exc:
            return self._retry(d, label, key, firm, str(exc))
        except Exception as exc:
            log.exception(
                "handler for %s failed: firm=%s message_id=%s", request_type, firm, d.message_id
            )
            reply = StoredReply(
                "error",
                error_body(
                    INTERNAL_ERROR, f"the request could not be served ({type(exc).__name__})"
                ),
                JSON_CONTENT_TYPE,
            )
            return Outcome(Action.REPLY_REJECT, "error", label, reply, key, firm)
        finally:
            elapsed = time.monotonic() - started
            if self._slow_s is not None and elapsed > self._slow_s:
                log.warning(
                    "slow request: type=%s firm=%s took %.1f s (limit %.1f s)",
                    request_type,
                    firm,
                    elapsed,
                    self._slow_s,
                )
        return self._finish(key, firm, label, reply)

    def _finish(self, key: str, firm: str, label: str, reply: StoredReply) -> Outcome:
        try:
            self._processed.put(key, reply.encode())
        except TransientError as exc:
            # Without the record a redelivery would run the handler again; better to retry now.
            log.warning("cannot record processed request (%s); will retry", exc)
            return Outcome(
                Action.RETRY, "retry", label, key=key, firm=firm, retry_after_s=RETRY_BASE_S
            )
        return Outcome(Action.REPLY_ACK, reply.outcome, label, reply, key, firm)

    def _retry(self, d: Delivery, label: str, key: str, firm: str, why: str) -> Outcome:
        delay = min(self._max_backoff_s, RETRY_BASE_S * (2 ** min(d.delivery_count, 20)))
        log.warning(
            "transient failure, request requeued in %.2f s (delivery %d): type=%s firm=%s: %s",
            delay,
            d.delivery_count + 1,
            label,
            firm,
            why,
        )
        return Outcome(Action.RETRY, "retry", label, key=key, firm=firm, retry_after_s=delay)

    def _check_shape(
        self, d: Delivery, request_type: str | None
    ) -> tuple[tuple[str, str] | None, tuple[Any] | None]:
        """(reason, message) of a request refused for its shape, else None; and the body as
        JSON (in a tuple) when it was read, for the handler."""
        if request_type is None:
            return (UNKNOWN_TYPE, "no request type: use routing key request.<type>"), None
        if d.type and d.routing_key.startswith(REQUEST_PREFIX) and d.type != request_type:
            return (
                MALFORMED,
                f"type property {d.type!r} does not match routing key {d.routing_key!r}",
            ), None
        if request_type not in self._handlers:
            return (UNKNOWN_TYPE, f"unknown request type {request_type!r}"), None
        if is_json_content_type(d.content_type):
            try:
                return None, (parse_json(d.body),)
            except InputRejected as exc:
                return (exc.reason, exc.message), None
        return None, None


def _request_type(d: Delivery) -> str | None:
    if d.routing_key.startswith(REQUEST_PREFIX) and len(d.routing_key) > len(REQUEST_PREFIX):
        return d.routing_key[len(REQUEST_PREFIX) :]
    return d.type or None
