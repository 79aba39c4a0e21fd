"""posgate's RabbitMQ topology: names, which queue serves which request type, and declaring it.

Theory of operation
-------------------
Firms publish requests to the topic exchange ``posgate`` with routing key ``request.<type>``.

* Compute types (``COMPUTE_TYPES``: ``margin.whatif``, ``dpl.report``, ``ebe.query``) each have
  their own quorum queue ``posgate.requests.<type>``, bound to ``posgate`` with exactly
  ``request.<type>``. Any number of ``posgate worker`` processes (and the daemon, when it has a
  handler for the type) consume those queues as competing consumers. A queue per type means a
  worker only ever receives types it serves, and workers may serve different subsets.
* Everything else under ``request.#`` reaches the quorum queue ``posgate.requests``, which only
  ``posgate serve`` consumes: ``posgate`` has the internal topic exchange ``posgate.unrouted`` as
  its alternate exchange, and ``posgate.requests`` is bound there with ``request.#``. A topic
  exchange has no "all but", and binding ``request.#`` on ``posgate`` itself would copy every
  compute request into both queues; the alternate exchange gives each request exactly one queue
  and still lets ``posgate serve`` answer unknown types with ``UNKNOWN_TYPE``.
* Every request queue dead-letters to ``posgate.dlx`` (topic) with an explicit
  ``x-delivery-limit``; ``posgate.dead`` (quorum, at most ``DEAD_MAX_LENGTH`` messages, the
  oldest dropped first) is bound there with ``#``.
* ``posgate.events`` (topic) carries notifications: ``firm.<id>.dpl.receipt``,
  ``firm.<id>.dpl.rejected``, ``firm.<id>.pmc.result``, ``firm.<id>.ebe.ready``,
  ``firm.<id>.ebe.instruction``, ``exchange.<id>.dpl.published``,
  ``exchange.<id>.ebe.published``, ``ops.alert.<name>``.

Declarations are idempotent and run on every connect. A queue that already exists with other
arguments (e.g. a changed delivery limit) makes the broker close the channel with
PRECONDITION_FAILED; the connection loop logs it and keeps retrying, so the operator sees
``posgate_amqp_up 0`` and the log line that names the queue.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pika
from pika.channel import Channel

from gateway.amqp.outbox import EVENTS_EXCHANGE, REQUESTS_EXCHANGE

if TYPE_CHECKING:
    from gateway.config import AmqpSettings

EXCHANGE = REQUESTS_EXCHANGE
UNROUTED_EXCHANGE = "posgate.unrouted"
DEAD_LETTER_EXCHANGE = "posgate.dlx"
DEAD_QUEUE = "posgate.dead"
REQUESTS_QUEUE = "posgate.requests"
EVENTS = EVENTS_EXCHANGE

DEAD_MAX_LENGTH = 10_000
DEAD_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-max-length": DEAD_MAX_LENGTH,
    "x-overflow": "drop-head",
}
"""Dead letters are kept for inspection but bounded: past 10,000 the oldest are dropped (the
newest say most about a live problem), and ``posgate_amqp_dead_letters`` alerts long before."""

COMPUTE_TYPES: tuple[str, ...] = ("margin.whatif", "dpl.report", "ebe.query")
"""Request types served from a queue of their own, so ``posgate worker`` processes can take them."""


def routing_key_for(request_type: str) -> str:
    return f"request.{request_type}"


def compute_queue(request_type: str) -> str:
    return f"posgate.requests.{request_type}"


def queues_to_serve(types: Iterable[str]) -> list[str]:
    """Queues ``posgate serve`` consumes: ``posgate.requests`` and every compute queue.

    Every compute queue, not only those of the types it has handlers for: a request routed to a
    queue nobody reads would never be answered, so a type ``serve`` cannot serve is answered
    ``UNKNOWN_TYPE`` at once instead (workers still share the queues of the types they serve).
    """
    del types
    return [REQUESTS_QUEUE] + [compute_queue(t) for t in COMPUTE_TYPES]


def queues_for_worker(types: Iterable[str]) -> list[str]:
    """Queues a ``posgate worker`` consumes; every type must be a compute type."""
    wanted = sorted(set(types))
    if not wanted:
        raise ValueError("a worker needs at least one request type to serve")
    others = [t for t in wanted if t not in COMPUTE_TYPES]
    if others:
        raise ValueError(
            f"a worker can only serve {', '.join(COMPUTE_TYPES)}; not {', '.join(others)}"
        )
    return [compute_queue(t) for t in wanted]


def request_queue_arguments(delivery_limit: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-delivery-limit": delivery_limit,
    }


def connection_parameters(settings: AmqpSettings, role: str) -> pika.URLParameters:
    """pika parameters from the settings: address and vhost from the URL, login from the settings.

    A user or password written in the URL is ignored: secrets never come from config files.
    """
    params = pika.URLParameters(settings.url)
    if settings.url.startswith("amqps://"):
        params.ssl_options = tls_options(settings)
    params.credentials = pika.PlainCredentials(
        settings.username, settings.password, erase_on_connect=False
    )
    params.heartbeat = settings.heartbeat_s
    params.blocked_connection_timeout = max(30.0, 4.0 * settings.heartbeat_s)
    params.connection_attempts = 1
    params.socket_timeout = 10.0
    params.stack_timeout = 30.0
    params.client_properties = {
        "connection_name": f"posgate {role} {socket.gethostname()}",
        "product": "posgate",
    }
    return params


def tls_options(settings: AmqpSettings) -> pika.SSLOptions:
    """amqps: verify the broker's certificate and host name (the system CAs, or ``ca_file``),
    and present ``cert_file``/``key_file`` when set (brokers with ``fail_if_no_peer_cert``)."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert_file:
        context.load_cert_chain(
            str(settings.cert_file), str(settings.key_file) if settings.key_file else None
        )
    host = urllib.parse.urlsplit(settings.url).hostname or ""
    return pika.SSLOptions(context, server_hostname=host)


Step = Callable[[Callable[[Any], None]], None]


def topology_steps(channel: Channel, delivery_limit: int) -> list[Step]:
    """The declarations, in order; each step takes the callback that runs the next one."""
    request_args = request_queue_arguments(delivery_limit)
    steps: list[Step] = [
        lambda cb: channel.exchange_declare(
            DEAD_LETTER_EXCHANGE, "topic", durable=True, callback=cb
        ),
        lambda cb: channel.queue_declare(
            DEAD_QUEUE, durable=True, arguments=DEAD_QUEUE_ARGUMENTS, callback=cb
        ),
        lambda cb: channel.queue_bind(DEAD_QUEUE, DEAD_LETTER_EXCHANGE, "#", callback=cb),
        lambda cb: channel.exchange_declare(
            UNROUTED_EXCHANGE, "topic", durable=True, internal=True, callback=cb
        ),
        lambda cb: channel.exchange_declare(
            EXCHANGE,
            "topic",
            durable=True,
            arguments={"alternate-exchange": UNROUTED_EXCHANGE},
            callback=cb,
        ),
        lambda cb: channel.queue_declare(
            REQUESTS_QUEUE, durable=True, arguments=request_args, callback=cb
        ),
        lambda cb: channel.queue_bind(REQUESTS_QUEUE, UNROUTED_EXCHANGE, "request.#", callback=cb),
        lambda cb: channel.exchange_declare(EVENTS, "topic", durable=True, callback=cb),
    ]
    for request_type in COMPUTE_TYPES:
        steps += _compute_queue_steps(channel, request_type, request_args)
    return steps


def _compute_queue_steps(channel: Channel, request_type: str, args: dict[str, Any]) -> list[Step]:
    queue = compute_queue(request_type)
    key = routing_key_for(request_type)
    return [
        lambda cb: channel.queue_declare(queue, durable=True, arguments=args, callback=cb),
        lambda cb: channel.queue_bind(queue, EXCHANGE, key, callback=cb),
    ]


def declare_topology(channel: Channel, delivery_limit: int, on_done: Callable[[], None]) -> None:
    """Declare everything on an open channel (asynchronously), then call ``on_done()``.

    A failing declaration closes the channel; the channel's close callback sees why.
    """
    run_steps(topology_steps(channel, delivery_limit), on_done)


def run_steps(steps: Sequence[Step], on_done: Callable[[], None]) -> None:
    remaining = list(steps)

    def next_step(_frame: object = None) -> None:
        if not remaining:
            on_done()
            return
        remaining.pop(0)(next_step)

    next_step()
