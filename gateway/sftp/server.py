"""The embedded SFTP server: listener, connection slots, upload clean-up and the host key.

Theory of operation
-------------------
The server is asyncssh's, run on an asyncio event loop in one background thread (``sftp-loop``):
one loop serves every connection, so there is no thread per connection or per session and no
copy of the data between threads (what made the previous paramiko server 3-4x slower than
OpenSSH's ``internal-sftp``; see ``scripts/bench sftp``). The loop is uvloop's (already the web
server's): the same asyncio API, with the loop, its timers and the sockets' reads and writes in
C rather than Python (a fifth less CPU a small upload without the disk's part, BENCHMARKS.md).
``start`` loads (or creates, on first start) the host key, removes upload temporaries a killed
daemon left behind, binds the listener and returns once it listens; ``stop`` closes the listener
and every connection and waits for the sessions to drop their unfinished uploads.

Before a login (OpenSSH's ``MaxStartups`` and ``LoginGraceTime``): at most
``max_unauthenticated_per_address`` connections of one address may be waiting to log in and
``max_unauthenticated`` in all; more are closed at once, and a connection that has not logged in
within ``login_grace_s`` is closed. A peer holding hundreds of idle sockets therefore only ever
occupies its own few slots, and never those of the firms. After a login at most
``max_connections`` connections are served, and ``max_sessions_per_connection`` SFTP sessions on
each.

Logins are public-key only. ``accounts`` is called at every login attempt, so a reload takes effect
for the next login. A key is accepted when its blob equals one of the account's keys. Every
rejected key or unknown login is logged with the login name and peer address (never key
material), counted in the ``failed_logins`` metric and answered only after a delay that doubles
with each recent failure from the same address, up to 16 times ``failed_login_delay_s``. Password
and keyboard-interactive logins are not offered at all: a client that tries one is answered
"publickey" at once (nothing is checked, so there is nothing to guess or to slow down).

The login checks and their delays are ``gateway.sftp.auth``'s (``SshConnection``,
``LoginThrottle``).
What a logged-in account sees and may do is ``gateway.sftp.filesystem``'s business, its
session's bookkeeping (audit line, quota, hand-over to the intake) ``gateway.sftp.account``'s; the
SFTP protocol itself is ``gateway.sftp.session``'s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncssh
import uvloop

from gateway import __version__
from gateway.sftp.account import (
    FolderSynced,
    HandOverThread,
    SessionSettings,
    SftpAccount,
    UploadCallback,
    fsync_error,
    utc_now,
)
from gateway.sftp.auth import LoginThrottle, SshConnection, public_key_blob
from gateway.sftp.handles import remove_expired_partials, remove_stale_uploads
from gateway.sftp.keys import create_key_file, fingerprint

log = logging.getLogger(__name__)

KEEPALIVE_S = 60
# SSH channel window and packet size: large enough that one session streams at disk speed.
_WINDOW = 8 * 1024 * 1024
_MAX_PACKET = 256 * 1024
# An fsync of at most this much data waits on the event loop when no other upload is open.
INLINE_SYNC_BYTES = 1024 * 1024
# How long the hand-over thread gathers closed uploads before it fsyncs their folders (once per
# folder) and tells the intake.
HAND_OVER_LINGER_S = 0.01
# Ciphers offered: asyncssh's, without chacha20-poly1305 (and, as by default, without CBC). The
# client takes the first of its own list that the server offers, so a slow cipher must be left
# out, not put last: asyncssh builds three cipher objects per packet for chacha20-poly1305, about
# 14 us a packet and 2.8 ms a MB, against 5 us and 0.9 ms for AES-CTR with UMAC-64 (what
# OpenSSH's client takes then) and 2 us and 0.8 ms for AES-GCM; a small upload is a dozen
# packets. Every SSH client speaks AES-CTR (curl's libssh2 before 1.11 has no AES-GCM). MACs are
# asyncssh's defaults.
_PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
ENCRYPTION_ALGS = tuple(
    alg for alg in _PREFERRED_CIPHERS if alg.encode() in asyncssh.encryption.get_encryption_algs()
)


class SftpStartError(Exception):
    """The server cannot start: the address is taken, the host key is unreadable, ..."""


# ---------------------------------------------------------------------------------------------
# the host key


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
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
        key = asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise SftpStartError(f"cannot load or create the SFTP host key {path}: {exc}") from exc
    log.info(
        "sftp host key path=%s type=%s fingerprint=%s",
        path,
        key.get_algorithm(),
        fingerprint(key.public_data),
    )
    return key


def _create_host_key(path: Path) -> None:
    if create_key_file(path, "posgate-host"):
        log.info("sftp created host key path=%s", path)
    else:
        log.info("sftp host key %s appeared meanwhile; using it", path)


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
        login_grace_s: float = 20.0,
        max_auth_attempts: int = 6,
        max_unauthenticated: int = 32,
        max_unauthenticated_per_address: int = 4,
        resume_keep_s: float = 86_400.0,
        max_sessions_per_account: int = 10,
        trusted_user_ca_keys: tuple[str, ...] = (),
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
        self.max_unauthenticated = max_unauthenticated
        self.max_unauthenticated_per_address = max_unauthenticated_per_address
        self.max_sessions_per_account = max_sessions_per_account
        self.ca_blobs = frozenset(
            blob for blob in (public_key_blob(line) for line in trusted_user_ca_keys) if blob
        )
        self._failed_logins = getattr(metrics, "failed_logins", None)
        self._connections_gauge = getattr(metrics, "sftp_connections", None)
        self._uploads_counter = getattr(metrics, "sftp_uploads", None)
        self._expired_counter = getattr(metrics, "sftp_partials_expired", None)
        self._throttle = LoginThrottle(failed_login_delay_s)
        self._hand_over: HandOverThread | None = None
        self.settings = SessionSettings(
            max_file_bytes=max_file_bytes,
            on_upload=on_upload,
            on_upload_done=self._count_upload,
            defer=self._defer,
            after_folder_sync=self._after_folder_sync,
            resume_keep_s=resume_keep_s,
            inline_sync_bytes=INLINE_SYNC_BYTES,
            clock=clock or utc_now,
        )
        self._bound_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: Any = None
        self._stopping = False
        # the connections, touched only on the loop thread
        self._waiting: dict[str, int] = {}
        self._waiting_total = 0
        self._served: set[SshConnection] = set()
        self._all: set[SshConnection] = set()

    # -- lifecycle

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when 0 was asked for), once started."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the SFTP server is already started")
        host_key = load_or_create_host_key(self.host_key_path)
        self._remove_stale_uploads()
        self._stopping = False
        self._hand_over = HandOverThread("sftp-hand-over", HAND_OVER_LINGER_S)  # in close order
        loop = uvloop.new_event_loop()  # asyncio's API, its loop and sockets in C
        thread = threading.Thread(target=loop.run_forever, name="sftp-loop", daemon=True)
        thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(host_key), loop)
        try:
            self._acceptor = future.result(30)
        except (OSError, asyncssh.Error, concurrent.futures.TimeoutError) as exc:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
            self._hand_over.shutdown()
            self._hand_over = None
            raise SftpStartError(
                f"cannot listen for SFTP on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self._loop, self._thread = loop, thread
        self._bound_port = int(self._acceptor.get_port())
        self._expire_partials()
        log.info("sftp listening host=%s port=%d", self.host, self.port)

    async def _listen(self, host_key: asyncssh.SSHKey) -> Any:
        return await asyncssh.create_server(
            lambda: SshConnection(self),
            self.host,
            self._requested_port,
            server_host_keys=[host_key],
            server_version=f"posgate_{__version__}",
            login_timeout=0,  # the grace is ours (per connection, logged)
            keepalive_interval=KEEPALIVE_S,
            keepalive_count_max=3,
            encryption_algs=ENCRYPTION_ALGS,
            window=_WINDOW,
            max_pktsize=_MAX_PACKET,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            line_editor=False,
            reuse_address=True,
            backlog=128,
        )

    def healthy(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stopping

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, wait for sessions to clean up their uploads."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping = True
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(max(0.1, deadline - time.monotonic()))
        with self.settings.lock:
            sessions = list(self.settings.sessions)
        for session in sessions:
            session.ended.wait(max(0.0, deadline - time.monotonic()))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(max(0.1, deadline - time.monotonic()))
        if not thread.is_alive():
            loop.close()
        if self._hand_over is not None:
            self._hand_over.shutdown()  # every committed upload reaches the intake
            self._hand_over = None
        self._loop = self._thread = None
        log.info("sftp stopped")

    async def _shutdown(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for connection in list(self._all):
            if connection.conn is not None:
                connection.conn.close()
        for connection in list(self._all):
            if connection.conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.conn.wait_closed(), 2)

    # -- used by the per-connection policy (on the loop thread)

    def admit(self, connection: SshConnection) -> str | None:
        """Take a pre-login slot for a new connection, or say why it gets none."""
        if self._stopping:
            return "stopping"
        waiting = self._waiting.get(connection.host, 0)
        if waiting >= self.max_unauthenticated_per_address:
            return f"{waiting} connections of this address are waiting to log in"
        if self._waiting_total >= self.max_unauthenticated:
            return f"{self._waiting_total} connections are waiting to log in"
        self._waiting[connection.host] = waiting + 1
        self._waiting_total += 1
        self._all.add(connection)
        if self._connections_gauge is not None:
            self._connections_gauge.inc()
        return None

    def logged_in(self, connection: SshConnection, account: SftpAccount) -> str | None:
        """Move a connection from the pre-login slots to the served ones (or refuse it)."""
        self._unwait(connection.host)
        connection.counted = False
        if len(self._served) >= self.max_connections:
            self._all.discard(connection)
            if self._connections_gauge is not None:
                self._connections_gauge.dec()
            return f"{self.max_connections} connections open"
        self._served.add(connection)
        connection.counted = True
        self._throttle.success(connection.host, account.login)
        return None

    def release(self, connection: SshConnection) -> None:
        if connection in self._served:
            self._served.discard(connection)
        else:
            self._unwait(connection.host)
        self._all.discard(connection)
        if self._connections_gauge is not None:
            self._connections_gauge.dec()

    def _unwait(self, host: str) -> None:
        left = self._waiting.get(host, 0) - 1
        if left > 0:
            self._waiting[host] = left
        else:
            self._waiting.pop(host, None)
        self._waiting_total = max(0, self._waiting_total - 1)

    def sessions_of(self, login: str) -> int:
        with self.settings.lock:
            return sum(1 for view in self.settings.sessions if view.account.login == login)

    def account_for(self, login: str) -> SftpAccount | None:
        try:
            accounts = self._accounts()
            account = accounts.get(login)
        except Exception:
            log.exception("sftp cannot read the accounts; refusing the login")
            return None
        return account if isinstance(account, SftpAccount) else None

    def login_failed(self, host: str, login: str) -> float:
        if self._failed_logins is not None:
            self._failed_logins.inc()
        return self._throttle.failure(host, login)

    def _defer(self, work: Callable[[], None]) -> None:
        worker = self._hand_over
        if worker is None:
            work()
        else:
            worker.submit(work)

    def _after_folder_sync(self, folder: str, work: FolderSynced) -> None:
        worker = self._hand_over
        if worker is None:
            work(fsync_error(folder))
        else:
            worker.after_folder_sync(folder, work)

    def _expire_partials(self) -> None:
        """Remove interrupted uploads older than the keep time now, then every few minutes."""
        keep_s = self.settings.resume_keep_s
        if keep_s <= 0 or self._loop is None or self._stopping:
            return
        self._defer(lambda: self._remove_expired(keep_s))
        self._loop.call_soon_threadsafe(
            self._loop.call_later, min(300.0, max(1.0, keep_s / 4)), self._expire_partials
        )

    def _remove_expired(self, keep_s: float) -> None:
        try:
            roots = {account.root for account in self._accounts().values()}
        except Exception:
            log.exception("sftp cannot read the accounts to expire interrupted uploads")
            return
        now = time.time()
        for root in sorted(roots):
            try:
                removed = remove_expired_partials(root, keep_s, now)
            except OSError as exc:
                log.warning("sftp cannot expire interrupted uploads under %s: %s", root, exc)
                continue
            if removed:
                log.warning(
                    "sftp removed %d interrupted upload(s) not resumed within %.0fs under %s",
                    removed,
                    keep_s,
                    root,
                )
                if self._expired_counter is not None:
                    self._expired_counter.inc(removed)

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
