"""SFTP logins: the per-connection policy before and at the login, and failed-login penalties.

``SshConnection`` is asyncssh's per-connection object: it takes (or is refused) a pre-login slot
from the server, closes a connection that has not logged in within the grace time, accepts a
public key whose blob equals one of the account's keys or a user certificate signed by a trusted
CA, answers every failure only after ``LoginThrottle``'s delay, and admits SFTP sessions up to the
per-connection and per-account limits. The listener, its slots and the host key are
``gateway.sftp.server``'s.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncssh

from gateway.sftp.account import SftpAccount
from gateway.sftp.filesystem import SpoolSftpInterface
from gateway.sftp.session import SftpOnlySession, SpoolSftpSession

if TYPE_CHECKING:
    from gateway.sftp.server import SftpServer

log = logging.getLogger(__name__)

MAX_DELAY_FACTOR = 16
FAILURE_MEMORY_S = 900.0
MAX_REMEMBERED_PEERS = 4096
_LOGIN_MAX = 64


# ---------------------------------------------------------------------------------------------
# authorized keys


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


# ---------------------------------------------------------------------------------------------
# failed logins


class LoginThrottle:
    """Per-address delay after failed logins: ``base * 2**(n-1)`` capped at ``base * 16``.

    ``n`` counts the recent failures from the address, whatever login they named. A successful
    login forgets only the failures that named *its* login (a firm that mistyped its own key is
    not kept waiting), never those of other logins: logging in with one's own account from an
    address does not wipe the penalty earned guessing others from it. Failures are forgotten
    after ``FAILURE_MEMORY_S`` without one; at most ``MAX_REMEMBERED_PEERS`` addresses are
    remembered (the oldest are dropped).
    """

    def __init__(self, base_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s = max(0.0, base_s)
        self._clock = clock
        self._peers: OrderedDict[str, tuple[dict[str, int], float]] = OrderedDict()
        self._lock = threading.Lock()

    def failure(self, peer: str, login: str = "") -> float:
        """Record a failure from ``peer`` naming ``login``; return how long to wait to answer."""
        now = self._clock()
        with self._lock:
            counts, last = self._peers.pop(peer, ({}, now))
            if now - last > FAILURE_MEMORY_S:
                counts = {}
            counts[login] = counts.get(login, 0) + 1
            self._peers[peer] = (counts, now)
            while len(self._peers) > MAX_REMEMBERED_PEERS:
                self._peers.popitem(last=False)
            count = sum(counts.values())
        return min(self.base_s * 2.0 ** min(count - 1, 16), self.base_s * MAX_DELAY_FACTOR)

    def success(self, peer: str, login: str = "") -> None:
        with self._lock:
            entry = self._peers.get(peer)
            if entry is None:
                return
            entry[0].pop(login, None)
            if not entry[0]:
                del self._peers[peer]


_EMPTY_STRING = (b"\x00\x00\x00\x00",)  # the one argument of asyncssh's padding packet


def skip_ignore_packets(conn: Any) -> None:
    """Send no ``SSH_MSG_IGNORE`` before every packet, as asyncssh does once the keys are set.

    That empty packet protects CBC ciphers (their next IV is the last cipher block the peer saw);
    this server offers no CBC cipher (``server.ENCRYPTION_ALGS``), and with CTR or GCM the packet
    only doubles the work of every answer: a second packet to encrypt and sign, and a second
    write to the socket (the costliest step of a small upload's round trips). OpenSSH sends none.
    The connection's ``send_packet`` is wrapped for this connection only; asyncssh inserts the
    packet by calling it, so the wrapper sees and drops exactly those.
    """
    send = conn.send_packet

    def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype != asyncssh.constants.MSG_IGNORE or args != _EMPTY_STRING:
            send(pkttype, *args, handler=handler)

    conn.send_packet = send_packet


def _safe_login(username: Any) -> str:
    """A login name fit for a log line (clients choose it: no control characters, bounded)."""
    text = str(username)[:_LOGIN_MAX]
    return text if text.isprintable() and " " not in text and text else repr(text)


class SshConnection(asyncssh.SSHServer):  # type: ignore[misc]
    """asyncssh's per-connection policy: limits before the login, public keys only."""

    def __init__(self, server: SftpServer) -> None:
        self._server = server
        self.conn: asyncssh.SSHServerConnection | None = None
        self.peer = "?"
        self.host = "?"
        self.account: SftpAccount | None = None
        self.failures = 0
        self.sessions = 0
        self.counted = False
        self._grace: asyncio.TimerHandle | None = None

    # -- connection

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        skip_ignore_packets(conn)
        address = conn.get_extra_info("peername") or ("?", 0)
        self.host = str(address[0])
        self.peer = f"{self.host}:{address[1]}"
        refusal = self._server.admit(self)
        if refusal is not None:
            log.warning("sftp connection refused peer=%s reason=%s", self.peer, refusal)
            conn.abort()
            return
        self.counted = True
        self._grace = asyncio.get_running_loop().call_later(
            self._server.login_grace_s, self._grace_over
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._grace is not None:
            self._grace.cancel()
        if self.counted:
            self.counted = False
            self._server.release(self)
        if exc is not None and self.account is None:
            log.info("sftp connection ended peer=%s reason=%s", self.peer, exc)

    def _grace_over(self) -> None:
        if self.account is None and self.conn is not None:
            log.warning(
                "sftp disconnect peer=%s reason=no login within %.0fs",
                self.peer,
                self._server.login_grace_s,
            )
            self.conn.abort()

    # -- authentication

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        account = self._server.account_for(username)
        if account is None:
            return await self._fail(username, "unknown login")
        blob = key.public_data
        if not any(public_key_blob(line) == blob for line in account.public_keys):
            return await self._fail(username, "key not authorized for this login")
        if not account.root.is_dir():
            log.error(
                "sftp login refused login=%s peer=%s reason=account root %s is missing",
                account.login,
                self.peer,
                account.root,
            )
            return False
        self._pending = account
        return True

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """A user certificate: its CA must be trusted; asyncssh then checks that the certificate
        names ``username`` among its principals and is valid now."""
        if key.public_data not in self._server.ca_blobs:
            return False
        account = self._server.account_for(username)
        if account is None or not account.root.is_dir():
            return False
        self._pending = account
        self.by_certificate = True
        return True

    def auth_completed(self) -> None:
        account = getattr(self, "_pending", None)
        if account is None:  # pragma: no cover - asyncssh completes only after a valid key
            if self.conn is not None:
                self.conn.abort()
            return
        if self._grace is not None:
            self._grace.cancel()
        refusal = self._server.logged_in(self, account)
        if refusal is not None:
            log.warning(
                "sftp login refused login=%s peer=%s reason=%s", account.login, self.peer, refusal
            )
            if self.conn is not None:
                self.conn.abort()
            return
        self.account = account
        log.info(
            "sftp login login=%s peer=%s method=%s",
            account.login,
            self.peer,
            "certificate" if getattr(self, "by_certificate", False) else "publickey",
        )

    async def _fail(self, username: str, why: str) -> bool:
        self.failures += 1
        delay = self._server.login_failed(self.host, username)
        log.warning(
            "sftp login failed login=%s peer=%s method=publickey reason=%s",
            _safe_login(username),
            self.peer,
            why,
        )
        if delay > 0:
            await asyncio.sleep(delay)
        if self.failures >= self._server.max_auth_attempts and self.conn is not None:
            log.warning("sftp disconnect peer=%s reason=too many failed logins", self.peer)
            self.conn.abort()
        return False

    # -- sessions

    def open_session(self, chan: Any) -> SpoolSftpSession:
        if self.account is None:  # pragma: no cover - asyncssh opens sessions after the login
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "no login")
        self.sessions += 1
        view = SpoolSftpInterface(self, self._server.settings)
        view.session_started()
        return SpoolSftpSession(chan, view)

    def session_closed(self) -> None:
        self.sessions = max(0, self.sessions - 1)

    def session_requested(self) -> Any:
        if self.account is None:
            return False
        if self.sessions >= self._server.max_sessions_per_connection:
            log.warning(
                "sftp session refused login=%s peer=%s reason=%d sessions open",
                self.account.login,
                self.peer,
                self.sessions,
            )
            return False
        open_for_account = self._server.sessions_of(self.account.login)
        if open_for_account >= self._server.max_sessions_per_account:
            log.warning(
                "sftp session refused login=%s peer=%s reason=%d sessions of this account open",
                self.account.login,
                self.peer,
                open_for_account,
            )
            return False
        return SftpOnlySession(self.open_session)
