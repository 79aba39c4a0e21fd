"""The embedded SFTP server: listener, connections, public-key logins and the host key.

Theory of operation
-------------------
``start`` loads (or creates, on first start) the host key, removes upload temporaries a killed
daemon left behind, binds the listener and runs an accept loop in a background thread. Each
accepted connection gets one supervising thread that runs a paramiko ``Transport`` (which has its
own thread, plus one per SFTP session) and closes it when the login grace time passes without a
successful login, when a peer exhausts its login attempts, or when the server stops. At most
``max_connections`` connections are served at once; more are closed at once.

Logins are public-key only. ``accounts`` is called at every login attempt, so a reload takes effect
for the next login. A key is accepted when its blob equals one of the account's keys. Every
rejected attempt (a password, keyboard-interactive, an unknown login, a key not on the account) is
logged with the login name and peer address (never key material), counted in the
``failed_logins`` metric and answered only after a delay that doubles with each recent failure
from the same address, up to 16 times ``failed_login_delay_s``.

What a logged-in account sees and may do is ``gateway.sftp.filesystem``'s business.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import functools
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import paramiko
from paramiko.ssh_exception import SSHException

from gateway import __version__
from gateway.sftp.filesystem import (
    SessionSettings,
    SftpAccount,
    SpoolSftpInterface,
    UploadCallback,
    utc_now,
)
from gateway.sftp.handles import remove_stale_uploads
from gateway.sftp.keys import create_key_file, fingerprint

log = logging.getLogger(__name__)

AUTH_FAILED: int = paramiko.AUTH_FAILED
AUTH_SUCCESSFUL: int = paramiko.AUTH_SUCCESSFUL
OPEN_SUCCEEDED: int = paramiko.OPEN_SUCCEEDED
OPEN_FAILED_PROHIBITED: int = paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
OPEN_FAILED_RESOURCE_SHORTAGE: int = paramiko.OPEN_FAILED_RESOURCE_SHORTAGE

MAX_DELAY_FACTOR = 16
FAILURE_MEMORY_S = 900.0
MAX_REMEMBERED_PEERS = 4096
_POLL_S = 0.2
KEEPALIVE_S = 60
_LOGIN_MAX = 64


class SftpStartError(Exception):
    """The server cannot start: the address is taken, the host key is unreadable, ..."""


# ---------------------------------------------------------------------------------------------
# keys


@functools.lru_cache(maxsize=4096)
def public_key_blob(line: str) -> bytes | None:
    """The key blob of an OpenSSH public-key line (``type base64 [comment]``, options allowed).

    Returns None (and logs once per distinct line) when the line holds no usable key.
    """
    fields = line.split()
    for i in range(len(fields) - 1):
        key_type, data = fields[i], fields[i + 1]
        try:
            blob = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            continue
        if _blob_type(blob) == key_type:
            return blob
    log.warning("sftp ignoring an unreadable public key line (starts %r)", line[:20])
    return None


def _blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    size = int.from_bytes(blob[:4], "big")
    if size > 64 or len(blob) < 4 + size:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def load_or_create_host_key(path: Path) -> paramiko.PKey:
    """Load the host key at ``path``; on first start create it (Ed25519, else RSA 3072).

    The private key is written with mode 0600 (parent folder created 0700) under a temporary name
    and linked into place, so a crash never leaves a half-written key and two starts never race
    each other into two keys. ``<path>.pub`` gets the public line for ``known_hosts``.
    """
    try:
        if not path.exists():
            _create_host_key(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "sftp host key %s is readable by others (mode %o); chmod 600 it", path, mode
            )
        key = paramiko.PKey.from_path(path)
    except (OSError, SSHException, ValueError) as exc:
        raise SftpStartError(f"cannot load or create the SFTP host key {path}: {exc}") from exc
    blob = key.asbytes()
    log.info(
        "sftp host key path=%s type=%s fingerprint=%s", path, key.get_name(), fingerprint(blob)
    )
    return key


def _create_host_key(path: Path) -> None:
    if create_key_file(path, "posgate-host"):
        log.info("sftp created host key path=%s", path)
    else:
        log.info("sftp host key %s appeared meanwhile; using it", path)


# ---------------------------------------------------------------------------------------------
# failed logins


class LoginThrottle:
    """Per-peer delay after failed logins: ``base * 2**(n-1)`` capped at ``base * 16``.

    A peer's count is forgotten after a successful login or after ``FAILURE_MEMORY_S`` without a
    failure; at most ``MAX_REMEMBERED_PEERS`` peers are remembered (the oldest are dropped).
    """

    def __init__(self, base_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s = max(0.0, base_s)
        self._clock = clock
        self._peers: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def failure(self, peer: str) -> float:
        """Record a failure from ``peer``; return how long to wait before answering."""
        now = self._clock()
        with self._lock:
            count, last = self._peers.pop(peer, (0, now))
            if now - last > FAILURE_MEMORY_S:
                count = 0
            count += 1
            self._peers[peer] = (count, now)
            while len(self._peers) > MAX_REMEMBERED_PEERS:
                self._peers.popitem(last=False)
        return min(self.base_s * 2.0 ** min(count - 1, 16), self.base_s * MAX_DELAY_FACTOR)

    def success(self, peer: str) -> None:
        with self._lock:
            self._peers.pop(peer, None)


def _safe_login(username: Any) -> str:
    """A login name fit for a log line (clients choose it: no control characters, bounded)."""
    text = str(username)[:_LOGIN_MAX]
    return text if text.isprintable() and " " not in text and text else repr(text)


class _Authenticator(paramiko.ServerInterface):  # type: ignore[misc]
    """paramiko's per-connection policy: public keys only, SFTP sessions only."""

    def __init__(self, server: SftpServer, peer: str, transport: paramiko.Transport) -> None:
        self._server = server
        self.peer = peer
        self._transport = transport
        self.account: SftpAccount | None = None
        self.failures = 0
        self.sessions = 0
        self._sessions_lock = threading.Lock()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED  # every client probes "none" first; not a failed login

    def check_auth_password(self, username: str, password: Any) -> int:
        return self._fail(username, "password", "password logins are not offered")

    def check_auth_interactive(self, username: str, submethods: Any) -> int:
        return self._fail(username, "keyboard-interactive", "not offered")

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        account = self._server.account_for(username)
        if account is None:
            return self._fail(username, "publickey", "unknown login")
        blob = key.asbytes()
        if not any(public_key_blob(line) == blob for line in account.public_keys):
            return self._fail(username, "publickey", "key not authorized for this login")
        if not account.root.is_dir():
            log.error(
                "sftp login refused login=%s peer=%s reason=account root %s is missing",
                account.login,
                self.peer,
                account.root,
            )
            return AUTH_FAILED
        self.account = account
        return AUTH_SUCCESSFUL

    def _fail(self, username: str, method: str, why: str) -> int:
        self.failures += 1
        delay = self._server.login_failed(self.peer)
        log.warning(
            "sftp login failed login=%s peer=%s method=%s reason=%s",
            _safe_login(username),
            self.peer,
            method,
            why,
        )
        if delay > 0:
            self._server.wait(delay)
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session" and self.account is not None:
            if self.sessions >= self._server.max_sessions_per_connection:
                return OPEN_FAILED_RESOURCE_SHORTAGE
            return OPEN_SUCCEEDED
        return OPEN_FAILED_PROHIBITED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "sftp" or self.account is None:
            return False
        with self._sessions_lock:
            if self.sessions >= self._server.max_sessions_per_connection:
                return False
            self.sessions += 1
        ok: bool = super().check_channel_subsystem_request(channel, name)
        if not ok:
            self.session_closed()
        return ok

    def session_closed(self) -> None:
        with self._sessions_lock:
            self.sessions = max(0, self.sessions - 1)


# ---------------------------------------------------------------------------------------------
# the server


class SftpServer:
    """The embedded SFTP server over the spool. ``start`` returns once it listens."""

    def __init__(
        self,
        host: str,
        port: int,
        host_key_path: Path,
        accounts: Callable[[], Mapping[str, SftpAccount]],
        max_file_bytes: int,
        failed_login_delay_s: float,
        on_upload: UploadCallback | None = None,
        metrics: Any = None,
        *,
        max_connections: int = 64,
        max_sessions_per_connection: int = 10,
        login_grace_s: float = 60.0,
        max_auth_attempts: int = 6,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.host_key_path = host_key_path
        self._accounts = accounts
        self.max_connections = max_connections
        self.max_sessions_per_connection = max_sessions_per_connection
        self.login_grace_s = login_grace_s
        self.max_auth_attempts = max_auth_attempts
        self._failed_logins = getattr(metrics, "failed_logins", None)
        self._connections_gauge = getattr(metrics, "sftp_connections", None)
        self._uploads_counter = getattr(metrics, "sftp_uploads", None)
        self._throttle = LoginThrottle(failed_login_delay_s)
        self._settings = SessionSettings(
            max_file_bytes=max_file_bytes,
            on_upload=on_upload,
            on_upload_done=self._count_upload,
            clock=clock or utc_now,
        )
        self._host_key: paramiko.PKey | None = None
        self._listener: socket.socket | None = None
        self._bound_port: int | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, paramiko.Transport | None] = {}

    # -- lifecycle

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when 0 was asked for), once started."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    def start(self) -> None:
        if self._accept_thread is not None:
            raise RuntimeError("the SFTP server is already started")
        self._host_key = load_or_create_host_key(self.host_key_path)
        self._remove_stale_uploads()
        try:
            infos = socket.getaddrinfo(self.host, self._requested_port, type=socket.SOCK_STREAM)
            family, _, _, _, address = infos[0]
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(min(self.max_connections, 128))
        except OSError as exc:
            raise SftpStartError(
                f"cannot listen for SFTP on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        listener.settimeout(_POLL_S)
        self._listener = listener
        self._bound_port = int(listener.getsockname()[1])
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="sftp-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("sftp listening host=%s port=%d", self.host, self.port)

    def healthy(self) -> bool:
        thread = self._accept_thread
        return thread is not None and thread.is_alive() and not self._stopping.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, wait for sessions to clean up their uploads."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            connections = list(self._connections.items())
        for _, transport in connections:
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()
        for thread, _ in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._settings.lock:
            sessions = list(self._settings.sessions)
        for session in sessions:
            session.ended.wait(max(0.0, deadline - time.monotonic()))
        self._accept_thread = None
        log.info("sftp stopped")

    # -- used by the per-connection policy

    def account_for(self, login: str) -> SftpAccount | None:
        try:
            accounts = self._accounts()
            account = accounts.get(login)
        except Exception:
            log.exception("sftp cannot read the accounts; refusing the login")
            return None
        return account if isinstance(account, SftpAccount) else None

    def login_failed(self, peer: str) -> float:
        if self._failed_logins is not None:
            self._failed_logins.inc()
        return self._throttle.failure(peer)

    def wait(self, seconds: float) -> None:
        """Sleep, but wake up when the server stops."""
        self._stopping.wait(seconds)

    def _count_upload(self) -> None:
        if self._uploads_counter is not None:
            self._uploads_counter.inc()

    # -- internals

    def _remove_stale_uploads(self) -> None:
        try:
            roots = {account.root for account in self._accounts().values()}
        except Exception:
            log.exception("sftp cannot read the accounts to clean old uploads")
            return
        for root in sorted(roots):
            try:
                removed = remove_stale_uploads(root)
            except OSError as exc:
                log.warning("sftp cannot clean old uploads under %s: %s", root, exc)
                continue
            if removed:
                log.warning(
                    "sftp removed %d unfinished upload(s) of a previous run under %s", removed, root
                )

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.error("sftp accept failed: %s", exc)
                self._stopping.wait(_POLL_S)
                continue
            peer = f"{address[0]}:{address[1]}"
            with self._lock:
                busy = len(self._connections) >= self.max_connections
                if not busy:
                    thread = threading.Thread(
                        target=self._serve, args=(sock, peer), name=f"sftp-{peer}", daemon=True
                    )
                    self._connections[thread] = None
            if busy:
                log.warning(
                    "sftp connection refused peer=%s reason=%d connections open",
                    peer,
                    self.max_connections,
                )
                with contextlib.suppress(OSError):
                    sock.close()
                continue
            thread.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        me = threading.current_thread()
        host = peer.rsplit(":", 1)[0]
        if self._connections_gauge is not None:
            self._connections_gauge.inc()
        transport: paramiko.Transport | None = None
        try:
            sock.settimeout(None)
            # A peer that vanishes without closing is noticed (and its unfinished upload dropped)
            # once a keepalive goes unanswered at the TCP level.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            transport = paramiko.Transport(sock)
            transport.set_keepalive(KEEPALIVE_S)
            transport.local_version = f"SSH-2.0-posgate_{__version__}"
            transport.add_server_key(self._host_key)
            transport.set_subsystem_handler(
                "sftp", paramiko.SFTPServer, SpoolSftpInterface, self._settings
            )
            with self._lock:
                self._connections[me] = transport
            if self._stopping.is_set():
                return
            policy = _Authenticator(self, host, transport)
            transport.start_server(server=policy)
            self._supervise(transport, policy, peer)
        except (SSHException, EOFError, OSError) as exc:
            log.info("sftp connection ended peer=%s reason=%s", peer, exc or type(exc).__name__)
        except Exception:
            log.exception("sftp connection failed peer=%s", peer)
        finally:
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()
            else:
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._connections.pop(me, None)
            if self._connections_gauge is not None:
                self._connections_gauge.dec()

    def _supervise(self, transport: paramiko.Transport, policy: _Authenticator, peer: str) -> None:
        deadline = time.monotonic() + self.login_grace_s
        logged_in = False
        # paramiko queues every opened channel for accept(); the SFTP sessions run on their own
        # threads, but a channel object that is dropped is closed when collected, so keep them.
        channels: list[paramiko.Channel] = []
        while transport.is_active() and not self._stopping.is_set():
            channel = transport.accept(_POLL_S)
            if channel is not None:
                channels = [c for c in channels if not c.closed]
                channels.append(channel)
            if logged_in:
                continue
            if transport.is_authenticated() and policy.account is not None:
                logged_in = True
                self._throttle.success(peer.rsplit(":", 1)[0])
                log.info("sftp login login=%s peer=%s", policy.account.login, peer)
            elif policy.failures >= self.max_auth_attempts:
                log.warning("sftp disconnect peer=%s reason=too many failed logins", peer)
                return
            elif time.monotonic() > deadline:
                log.warning(
                    "sftp disconnect peer=%s reason=no login within %.0fs", peer, self.login_grace_s
                )
                return
