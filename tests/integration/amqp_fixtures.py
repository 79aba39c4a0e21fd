"""Fixtures and test clients for tests against the real RabbitMQ broker on 127.0.0.1:5672.

``rabbitmq`` decides, once per test run, whether the broker can be used: it skips the test with the
reason when it cannot, and fails instead when ``CI=true``. Users are created once per test run and
each test module gets a vhost of its own (``amqp_sandbox``), both with unique names, and deleted
afterwards. Everything is administered with ``rabbitmqctl``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pika
import pika.exceptions
import pytest

from gateway.config import AmqpSettings
from tests.support import contract

__all__ = ["amqp_sandbox", "rabbitmq"]
"""What ``from tests.integration.amqp_fixtures import *`` brings: the pytest fixtures."""

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672
FIRM_A = "00005"
FIRM_B = "00390"


def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    result = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def rabbitmqctl_all(*commands: tuple[str, ...], timeout: float = 60.0) -> None:
    """Run independent rabbitmqctl commands side by side (each one starts an Erlang VM)."""
    procs = [
        (
            cmd,
            subprocess.Popen(
                ["rabbitmqctl", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            ),
        )
        for cmd in commands
    ]
    failures = []
    for cmd, proc in procs:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"rabbitmqctl {' '.join(cmd)}: {err.strip()}")
    if failures:
        raise RuntimeError("; ".join(failures))


def broker_answers(port: int = BROKER_PORT, timeout: float = 2.0) -> bool:
    """An AMQP handshake (not just a TCP connect) with the guest login succeeds."""
    try:
        params = pika.ConnectionParameters(
            BROKER_HOST,
            port,
            connection_attempts=1,
            socket_timeout=timeout,
            blocked_connection_timeout=timeout,
        )
        pika.BlockingConnection(params).close()
        return True
    except (pika.exceptions.AMQPError, OSError):
        return False


def wait_for_broker(timeout: float = 60.0, port: int = BROKER_PORT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker_answers(port):
            return
        time.sleep(0.5)
    raise AssertionError(f"the broker did not answer within {timeout:.0f} s")


def broker_problem() -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed"
    try:
        with socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=2.0):
            pass
    except OSError as exc:
        return f"no RabbitMQ broker on {BROKER_HOST}:{BROKER_PORT} ({exc})"
    return None


def _unavailable(problem: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"RabbitMQ needed in CI: {problem}")
    pytest.skip(f"RabbitMQ not available: {problem}")


Ctl = Callable[..., str]
CtlAll = Callable[..., None]


@dataclass
class Broker:
    run: str
    password: str
    users: dict[str, str] = field(default_factory=dict)
    """role -> broker user name"""
    port: int = BROKER_PORT
    ctl: Ctl = rabbitmqctl
    """``rabbitmqctl`` addressed to this broker's node"""
    ctl_all: CtlAll = rabbitmqctl_all


def add_users(broker: Broker) -> None:
    """This run's users on ``broker`` (service, two firms, one stranger)."""
    for role in ("svc", "firm-a", "firm-b", "stranger"):
        broker.users[role] = f"posgate-test-{role}-{broker.run}"
    broker.ctl_all(*(("add_user", name, broker.password) for name in broker.users.values()))


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[Broker]:
    """The real broker, with this run's users; skip (or fail when CI=true) without it."""
    problem = broker_problem()
    if problem is not None:
        _unavailable(problem)
    run = uuid.uuid4().hex[:8]
    broker = Broker(run=run, password=secrets.token_hex(12))
    try:
        try:
            add_users(broker)
        except (RuntimeError, OSError) as exc:
            _unavailable(f"rabbitmqctl cannot administer the broker ({exc})")
        yield broker
    finally:
        with contextlib.suppress(Exception):
            rabbitmqctl_all(*(("delete_user", name) for name in broker.users.values()))


@dataclass
class AmqpSandbox:
    """One vhost with the service user, two mapped firm users and one unmapped user."""

    broker: Broker
    vhost: str
    real_handlers: bool = False
    """True once a real daemon serves this vhost: replies are then checked against the
    schemas of their type, not only the common envelope (test handlers answer anything)."""

    @property
    def service_user(self) -> str:
        return self.broker.users["svc"]

    @property
    def firm_a(self) -> str:
        return self.broker.users["firm-a"]

    @property
    def firm_b(self) -> str:
        return self.broker.users["firm-b"]

    @property
    def stranger(self) -> str:
        return self.broker.users["stranger"]

    def identities(self) -> dict[str, str]:
        return {self.firm_a: FIRM_A, self.firm_b: FIRM_B}

    def url(self, port: int | None = None) -> str:
        port = port or self.broker.port
        return f"amqp://{BROKER_HOST}:{port}/{urllib.parse.quote(self.vhost, safe='')}"

    def settings(self, **overrides: Any) -> AmqpSettings:
        base = AmqpSettings(
            enabled=True,
            url=self.url(),
            username=self.service_user,
            password=self.broker.password,
            heartbeat_s=10,
            prefetch=20,
            max_backoff_s=1.0,
            delivery_limit=3,
            request_timeout_s=10.0,
        )
        return replace(base, **overrides)

    def connect(self, user: str | None = None, port: int | None = None) -> pika.BlockingConnection:
        params = pika.ConnectionParameters(
            BROKER_HOST,
            port or self.broker.port,
            self.vhost,
            pika.PlainCredentials(user or "guest", self.broker.password if user else "guest"),
            connection_attempts=1,
            heartbeat=30,
        )
        return pika.BlockingConnection(params)

    def admin(self) -> pika.BlockingConnection:
        """guest, with every right in the vhost: for looking at queues."""
        return self.connect(None)

    def restrict_topics(self, user: str, firm: str) -> None:
        """Topic permissions: the firm may only bind to its own events, only send requests."""
        self.broker.ctl_all(
            (
                "set_topic_permissions",
                "-p",
                self.vhost,
                user,
                "posgate.events",
                "^$",
                rf"^firm\.{firm}\.",
            ),
            ("set_topic_permissions", "-p", self.vhost, user, "posgate", r"^request\.", "^$"),
        )


def _firm_permissions(user: str) -> tuple[str, str, str]:
    mine = rf"reply\.{user}(\..*)?"
    return f"^{mine}$", f"^(posgate|{mine})$", f"^(posgate\\.events|{mine})$"


@contextlib.contextmanager
def open_sandbox(broker: Broker) -> Iterator[AmqpSandbox]:
    """A vhost of its own (unique name) on ``broker`` with this run's users, deleted afterwards."""
    vhost = f"posgate-test-{broker.run}-{uuid.uuid4().hex[:6]}"
    broker.ctl("add_vhost", vhost)
    try:
        box = AmqpSandbox(broker, vhost)
        broker.ctl_all(
            ("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"),
            (
                "set_permissions",
                "-p",
                vhost,
                box.service_user,
                "^posgate.*",
                r"^(posgate.*|amq\.default)$",
                "^posgate.*",
            ),
            *(
                ("set_permissions", "-p", vhost, user, *_firm_permissions(user))
                for user in (box.firm_a, box.firm_b, box.stranger)
            ),
        )
        yield box
    finally:
        with contextlib.suppress(Exception):
            broker.ctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def amqp_sandbox(rabbitmq: Broker) -> Iterator[AmqpSandbox]:
    """A vhost of this test module's own (unique name), deleted afterwards."""
    with open_sandbox(rabbitmq) as box:
        yield box


class FirmClient:
    """A firm's side: publishes requests with its own user_id and reads its reply queue."""

    def __init__(
        self,
        box: AmqpSandbox,
        user: str,
        *,
        durable: bool = False,
        suffix: str = "",
        confirms: bool = True,
    ) -> None:
        self.box = box
        self.user = user
        self.connection = box.connect(user)
        self.channel = self.connection.channel()
        if confirms:
            self.channel.confirm_delivery()
        self.reply_queue = f"reply.{user}" + (f".{suffix}" if suffix else "")
        self.sent: dict[str, tuple[str, bytes, str | None]] = {}
        """correlation id -> (type, body, content type) of each request sent"""
        if durable:
            self.channel.queue_declare(
                self.reply_queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
        else:
            self.channel.queue_declare(self.reply_queue, exclusive=True)

    def send(
        self,
        request_type: str,
        body: bytes = b"{}",
        *,
        content_type: str | None = "application/json",
        message_id: str | None = None,
        correlation_id: str | None = None,
        user_id: str | None | bool = True,
        reply: bool = True,
        reply_to: str | None = None,
        type_property: str | None = None,
    ) -> str:
        """Publish one request (confirmed); returns its correlation id."""
        correlation_id = correlation_id or uuid.uuid4().hex
        properties = pika.BasicProperties(
            content_type=content_type,
            correlation_id=correlation_id,
            message_id=message_id if message_id is not None else uuid.uuid4().hex,
            reply_to=(reply_to or self.reply_queue) if reply else None,
            user_id=self.user if user_id is True else (user_id or None),
            delivery_mode=pika.DeliveryMode.Persistent,
            type=type_property,
        )
        self.channel.basic_publish(
            "posgate", f"request.{request_type}", body, properties, mandatory=True
        )
        self.sent[correlation_id] = (request_type, body, content_type)
        return correlation_id

    def replies(
        self, count: int, timeout: float = 10.0, settle_s: float = 0.0
    ) -> list[tuple[pika.BasicProperties, bytes]]:
        """Read until ``count`` replies (then ``settle_s`` more for extras) or the timeout."""
        got: list[tuple[pika.BasicProperties, bytes]] = []
        deadline = time.monotonic() + timeout
        extra_until: float | None = None
        for method, properties, body in self.channel.consume(
            self.reply_queue, inactivity_timeout=0.1
        ):
            if method is not None:
                self.channel.basic_ack(method.delivery_tag)
                got.append((properties, body))
                contract.check_exchange(
                    self.sent.get(properties.correlation_id or ""),
                    properties,
                    body,
                    typed=self.box.real_handlers,
                )
            now = time.monotonic()
            if len(got) >= count and extra_until is None:
                extra_until = now + settle_s
            if (extra_until is not None and now >= extra_until) or now >= deadline:
                break
        self.channel.cancel()
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


def queue_depth(box: AmqpSandbox, queue: str) -> int:
    connection = box.admin()
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def get_messages(
    box: AmqpSandbox, queue: str, count: int, timeout: float = 10.0
) -> list[tuple[Any, pika.BasicProperties, bytes]]:
    """Take up to ``count`` messages from ``queue`` (acked), waiting up to ``timeout``."""
    connection = box.admin()
    channel = connection.channel()
    got: list[tuple[Any, pika.BasicProperties, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got.append((method, properties, body))
    finally:
        connection.close()
    return got


def wait_until(
    predicate: Callable[[], bool], timeout: float, message: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s: {message}")


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored: a broker outage for one client."""

    def __init__(self, target_port: int = BROKER_PORT) -> None:
        self.target_port = target_port
        self.port = 0
        self._listener: socket.socket | None = None
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((BROKER_HOST, self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            links, self._links = self._links, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((BROKER_HOST, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._links += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def whatif_with_pid(request: Any) -> Any:
    """A test handler for worker processes: says which process answered (``--handler``)."""
    from gateway.amqp.service import Reply

    time.sleep(0.005)
    return Reply({"firm": request.firm, "pid": os.getpid()})


def daemon_config_for(tmp_path: Any, box: AmqpSandbox, **tables: dict[str, object]) -> Any:
    """A test config of the real daemon talking to ``box``'s vhost as its service user, with the
    firm account 00005 mapped to the sandbox's first firm user."""
    from tests.support.daemon import make_test_config

    amqp = {
        "enabled": True,
        "url": box.url(),
        "username": box.service_user,
        "max_backoff_s": 1.0,
        **tables.pop("amqp", {}),
    }
    cfg = make_test_config(tmp_path, amqp=amqp, **tables)
    box.real_handlers = True
    account = cfg.root / "config" / "accounts" / "00005.toml"
    account.write_text(
        account.read_text().replace(
            'amqp_user = "posgate-test-00005"', f'amqp_user = "{box.firm_a}"'
        )
    )
    return cfg
