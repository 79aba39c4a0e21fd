"""A RabbitMQ node of a test's own, for tests that stop or break the broker.

The node runs from the installed RabbitMQ with its own node name, AMQP port and Erlang
distribution port, its database, logs, config and Erlang cookie in a temporary folder, and no
plugins (so no management listener). It shares only ``epmd``, which keeps one registration per
node name and is not disturbed by a node coming and going. ``rabbitmqctl -n <node>`` with the
node's cookie administers it; the machine's own broker is never addressed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
"""Where Debian's package keeps the unwrapped scripts (``/usr/sbin`` ones switch user)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_problem() -> str | None:
    """Why a private node cannot be started here, or None."""
    for name in ("rabbitmq-server", "rabbitmqctl"):
        if not (RABBITMQ_BIN / name).is_file():
            return f"{RABBITMQ_BIN / name} is not installed"
    if shutil.which("erl") is None and not Path("/usr/lib/erlang/bin/erl").exists():
        return "Erlang is not installed"
    return None


class RabbitNode:
    """One private node: ``start()``, administer with ``ctl()``, ``stop_app``/``start_app`` for an
    outage, ``stop()`` at the end (halts the node, then kills its process group if it lingers)."""

    def __init__(self, base: Path, extra_config: str = "") -> None:
        self.base = base
        self.name = f"posgate-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        home = base / "home"
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq-env.conf").write_text("")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "log.console = false\n"
            "vm_memory_high_watermark.relative = 0.2\n"
            "disk_free_limit.absolute = 50MB\n" + extra_config
        )
        # The cookie is written before the node starts so the CLI and the node agree on it.
        cookie = home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self, timeout: float = 90.0) -> None:
        log = (self.base / "log" / "console.out").open("wb")
        self._process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the private RabbitMQ node exited: {self.console_tail()}")
            try:
                # rabbitmqctl boots an Erlang VM of its own: on a loaded machine that alone
                # can take tens of seconds, so give each attempt what is left of the deadline.
                left = max(deadline - time.monotonic(), 10.0)
                self.ctl("await_startup", "--timeout", str(int(left)), timeout=left + 30)
                return
            except RuntimeError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the private RabbitMQ node did not start: {self.console_tail()}")

    def console_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.base / "log" / "console.out").read_text(errors="replace")[-2000:]
        return ""

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        try:
            result = subprocess.run(
                [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            command = " ".join(args)
            raise RuntimeError(f"rabbitmqctl {command} timed out after {timeout:.0f} s") from exc
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def ctl_all(self, *commands: tuple[str, ...], timeout: float = 60.0) -> None:
        for command in commands:
            self.ctl(*command, timeout=timeout)

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self, timeout: float = 60.0) -> None:
        # The listener socket can still be closing just after stop_app (EADDRINUSE): retry.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("start_app")
                self.ctl("await_startup", "--timeout", "30", timeout=45)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=30)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
