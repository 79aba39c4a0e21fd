"""One account's SFTP session: who logged in, what the sessions of a server share, the audit line,
the quota, and the hand-over of closed uploads to the intake.

``AccountSession`` is the bookkeeping half of a session; ``gateway.sftp.filesystem`` adds what the
account sees and may do (its ``SpoolSftpInterface`` is an ``AccountSession``).

* Lifecycle: ``session_started`` registers the session with the server (per-account session
  limits count them); ``session_ended`` drops or keeps (for a resume) the uploads still open and
  writes the session's audit line: login, peer, seconds, files and bytes in, files out, refusals,
  dropped uploads.
* Quota: ``quota_bytes`` of the account bounds what it holds under ``inbound/`` (hidden files
  included); ``space`` answers ``statvfs`` with it.
* Hand-over: a closed upload is renamed into place by its handle; then its folder is fsynced and
  ``on_upload`` is called with the receipt instant, the server's clock when the client closed the
  file (or renamed it into an inbound folder), never a time the client set. With
  ``SessionSettings.after_folder_sync`` this runs after the client has its answer, one folder
  fsync for the uploads closed meanwhile (``HandOverThread``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from asyncssh.sftp import SFTPVFSAttrs

from gateway.sftp.paths import (
    INBOUND,
    SFTP_PERMISSION_DENIED,
    Refused,
    fsync_folder,
    virtual_path,
    within,
)

if TYPE_CHECKING:
    from gateway.sftp.handles import UploadHandle

log = logging.getLogger(__name__)

AccountKind = Literal["firm", "exchange"]
ACCOUNT_KINDS: tuple[str, ...] = ("firm", "exchange")


@dataclass(frozen=True)
class SftpAccount:
    """An SFTP login: its name, whether it is a firm or an exchange, its root and its keys.

    ``public_keys`` are OpenSSH public-key lines (``ssh-ed25519 AAAA... comment``);
    ``quota_bytes`` bounds what the account may hold in its inbound folders (uploads waiting for
    the intake, interrupted uploads kept for a resume, uploads in progress).
    """

    login: str
    kind: AccountKind
    root: Path
    public_keys: tuple[str, ...]
    quota_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACCOUNT_KINDS:
            raise ValueError(
                f"account {self.login!r}: kind must be firm or exchange, not {self.kind!r}"
            )


UploadCallback = Callable[[SftpAccount, Path, dt.datetime], None]
"""Called once an upload is in place: (account, final path, receipt instant). The instant comes
from the server's clock (the moment the client closed the file, or renamed it into place), never
from a time the client set."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class SessionSettings:
    """What every SFTP session of one server shares: limits, the upload hook, live sessions."""

    max_file_bytes: int
    on_upload: UploadCallback | None = None
    on_upload_done: Callable[[], None] | None = None
    clock: Callable[[], dt.datetime] = utc_now
    # runs work off the client's path, in order (None: at once, in the caller)
    defer: Callable[[Callable[[], None]], object] | None = None
    # runs work after an fsync of a folder, in the order of ``defer`` (None: both at once, here)
    after_folder_sync: Callable[[str, FolderSynced], object] | None = None
    # how long an interrupted upload is kept for a resume (0: removed at once)
    resume_keep_s: float = 0.0
    # an fsync of at most this many bytes runs on the event loop while no other upload is open
    # on the server (0: always in a worker thread)
    inline_sync_bytes: int = 0
    sessions: set[AccountSession] = field(default_factory=set)
    open_uploads: int = 0  # over all sessions, under ``lock``
    lock: threading.Lock = field(default_factory=threading.Lock)


FolderSynced = Callable[[OSError | None], None]
"""Work that runs once its folder is fsynced (or that fsync failed: the error)."""


class HandOverThread:
    """One thread that runs deferred work in the order it was handed in: the hand-over of closed
    uploads (after an fsync of their folder), the sessions' audit lines, the expiry of
    interrupted uploads. A plain queue, no future per item.

    Work is taken in batches: once something arrives the thread waits ``linger_s`` for more,
    fsyncs each folder named in the batch once, then runs the batch in order. A client sending
    many small files so costs one folder fsync and one wake-up of this thread per batch instead
    of per file; the intake hears of a file a few ms later (the client has had its answer since
    the file itself was durable). An fsync of a folder covers every rename done in it before.
    """

    def __init__(self, name: str, linger_s: float = 0.0) -> None:
        self._queue: queue.SimpleQueue[tuple[str | None, Callable[..., None]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._open = True
        self.linger_s = linger_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        """Queue ``work``; once the thread is shut down, run it at once in the caller."""
        if not self._put(None, work):
            work()

    def after_folder_sync(self, folder: str, work: FolderSynced) -> None:
        """Queue ``work`` to run after an fsync of ``folder`` (once shut down: at once, here)."""
        if not self._put(folder, work):
            work(fsync_error(folder))

    def _put(self, folder: str | None, work: Callable[..., None]) -> bool:
        with self._lock:
            if self._open:
                self._queue.put((folder, work))
                return True
        return False

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread."""
        with self._lock:
            self._open = False
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            if self.linger_s > 0:
                time.sleep(self.linger_s)
            batch, last = [first], False
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                batch.append(item)
            errors = {
                folder: fsync_error(folder)
                for folder in dict.fromkeys(folder for folder, _ in batch if folder is not None)
            }
            for folder, work in batch:
                try:
                    if folder is None:
                        work()
                    else:
                        work(errors[folder])
                except Exception:
                    log.exception("sftp hand-over failed")
            if last:
                return


def fsync_error(folder: str) -> OSError | None:
    """fsync ``folder``; the error if that failed."""
    try:
        fsync_folder(folder)
    except OSError as exc:
        return exc
    return None


class AccountSession:
    """The bookkeeping of one SFTP session of one authenticated account.

    Built with the connection's policy object, whose ``account`` attribute is the authenticated
    ``SftpAccount`` (and whose optional ``session_closed()`` is called when the session ends).
    """

    def __init__(self, server: Any, settings: SessionSettings) -> None:
        account = getattr(server, "account", None)
        if not isinstance(account, SftpAccount):
            raise RuntimeError("an SFTP session needs an authenticated account")
        self.account: SftpAccount = account
        self.settings = settings
        self.root = os.path.realpath(account.root)
        self._prefix = self.root.rstrip("/") + "/"  # what every path below the root starts with
        self._uploads: set[UploadHandle] = set()
        self._lock = threading.Lock()
        self.ended = threading.Event()
        self._peer = str(getattr(server, "peer", "?"))
        self._on_end: Callable[[], None] | None = getattr(server, "session_closed", None)
        self._reason = ""
        self._started = time.monotonic()
        # what the session did, for its audit line when it ends
        self.files_in = 0
        self.bytes_in = 0
        self.files_out = 0
        self.bytes_out = 0
        self.failed = 0  # uploads refused or broken off by an error while being written
        self.interrupted = 0  # uploads left open when the client went away, kept for a resume
        self.dropped = 0  # the same, not kept
        self.refusals = 0

    def _status(self, refused: Refused) -> int:
        """The status code of a refusal; its reason is kept for the answer to the client."""
        self._reason = str(refused)
        return refused.code

    def refused_quota(self) -> None:
        self.refusals += 1
        self._reason = f"quota exceeded: {self.account.quota_bytes} bytes in inbound/"

    def take_reason(self) -> str:
        """The reason of the last refusal (once), for the client's status message."""
        reason, self._reason = self._reason, ""
        return reason

    # -- lifecycle

    def session_started(self) -> None:
        with self.settings.lock:
            self.settings.sessions.add(self)
        self._started = time.monotonic()
        log.info("sftp session started login=%s peer=%s", self.account.login, self._peer)

    def session_ended(self) -> None:
        with self._lock:
            pending = list(self._uploads)
        for handle in pending:
            self.abandon(handle)
        with self.settings.lock:
            self.settings.sessions.discard(self)
        seconds = time.monotonic() - self._started
        # After the hand-over of the session's last uploads, so that the line counts them.
        if self.settings.defer is not None:
            self.settings.defer(lambda: self._audit(seconds))
        else:
            self._audit(seconds)
        if self._on_end is not None:
            self._on_end()
        self.ended.set()

    def _audit(self, seconds: float) -> None:
        """The audit line of the session: who, from where, how long, what went in and out, and
        how it ended (``complete``: every upload it opened was completed, ``failed``: one was
        refused or broken off by an error, ``interrupted``: one was left open at the end)."""
        if self.interrupted or self.dropped:
            outcome = "interrupted"
        elif self.failed:
            outcome = "failed"
        else:
            outcome = "complete"
        log.info(
            "sftp session ended login=%s peer=%s seconds=%.1f uploads=%d bytes_in=%d "
            "downloads=%d bytes_out=%d failed=%d interrupted=%d dropped=%d refused=%d "
            "outcome=%s",
            self.account.login,
            self._peer,
            seconds,
            self.files_in,
            self.bytes_in,
            self.files_out,
            self.bytes_out,
            self.failed,
            self.interrupted,
            self.dropped,
            self.refusals,
            outcome,
        )

    def transfer_ended(self, op: str, real: str, size: int, seconds: float, outcome: str) -> None:
        """The audit line of one file the session uploaded (``op`` upload) or read (download):
        its bytes, the seconds from its open to its close, and ``outcome``: ``complete``,
        ``failed`` (refused or broken off by an error), ``interrupted`` (left open when the
        client went away, kept hidden for a resume) or ``dropped`` (the same, not kept)."""
        if op == "download":
            self.files_out += 1
            self.bytes_out += size
        elif outcome == "complete":
            self.files_in += 1
            self.bytes_in += size
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "interrupted":
            self.interrupted += 1
        else:
            self.dropped += 1
        log.log(
            logging.INFO if outcome == "complete" else logging.WARNING,
            "sftp transfer login=%s op=%s path=%s bytes=%d seconds=%.3f outcome=%s",
            self.account.login,
            op,
            self.shown(real),
            size,
            seconds,
            outcome,
        )

    def abandon(self, handle: UploadHandle) -> None:
        """An upload the client did not close (it went away, or the session ended first): kept
        hidden for a resume when a keep time is set and it holds data, else dropped."""
        if handle.state == "open":
            seconds = handle.seconds()
            if self.settings.resume_keep_s > 0 and handle.keep_partial():
                self.transfer_ended("upload", handle.final, handle.size, seconds, "interrupted")
            else:
                self.transfer_ended("upload", handle.final, handle.size, seconds, "dropped")
        elif handle.state == "failed":
            self.transfer_ended("upload", handle.final, handle.size, handle.seconds(), "failed")
        handle.discard("aborted")

    def inbound_bytes(self, but: str = "") -> int:
        """What the account holds under ``inbound/`` (hidden files included), ``but`` one file."""
        total = 0
        for folder, dirs, files in os.walk(os.path.join(self.root, INBOUND), followlinks=False):
            del dirs
            for name in files:
                path = os.path.join(folder, name)
                if path == but:
                    continue
                with contextlib.suppress(OSError):
                    total += os.lstat(path).st_size
        return total

    def space(self) -> SFTPVFSAttrs:
        """``statvfs`` for ``df`` and rclone ``about``: the account's quota when it has one, else
        the file system of its root."""
        vfs = SFTPVFSAttrs.from_local(os.statvfs(self.root))
        quota = self.account.quota_bytes
        if quota is None:
            return vfs
        block = vfs.frsize or 4096
        free = max(0, quota - self.inbound_bytes()) // block
        vfs.blocks = quota // block
        vfs.bfree = vfs.bavail = min(free, vfs.bavail)
        return vfs

    def upload_started(self, handle: UploadHandle) -> None:
        with self._lock:
            self._uploads.add(handle)
        with self.settings.lock:
            self.settings.open_uploads += 1

    def upload_finished(self, handle: UploadHandle) -> None:
        with self._lock:
            if handle not in self._uploads:
                return
            self._uploads.discard(handle)
        with self.settings.lock:
            self.settings.open_uploads -= 1

    def may_sync_inline(self, handle: UploadHandle) -> bool:
        """Whether the fsync ``handle`` needs may run on the event loop: it is small and no
        other upload is open on the server, so that the wait stalls no one else's upload
        (OpenSSH's ``sftp-server``, one process per session, always waits so)."""
        settings = self.settings
        return handle.unsynced <= settings.inline_sync_bytes and settings.open_uploads <= 1

    def upload_committed(self, handle: UploadHandle, received_at: dt.datetime) -> None:
        """A closed upload is in place: fsync its folder, then tell the intake.

        With ``settings.after_folder_sync`` this runs after the client has its answer (the
        file's data is fsynced before the rename), so that the next file of a client uploading
        many is written while this folder's journal commit is under way, and one folder fsync
        serves several files. ``received_at`` is the close instant.
        """
        folder = os.path.dirname(handle.final)
        if self.settings.after_folder_sync is not None:
            self.settings.after_folder_sync(
                folder, lambda error: self._hand_over(handle, received_at, error)
            )
        else:
            self._hand_over(handle, received_at, fsync_error(folder))

    def _hand_over(
        self, handle: UploadHandle, received_at: dt.datetime, error: OSError | None
    ) -> None:
        if error is not None:
            log.error(
                "sftp cannot fsync the folder of an upload login=%s path=%s error=%s",
                self.account.login,
                self.shown(handle.final),
                error.strerror or error,
            )
        self.transfer_ended("upload", handle.final, handle.size, handle.closed_after, "complete")
        self._announce(Path(handle.final), received_at)

    def _announce(self, final: Path, received_at: dt.datetime) -> None:
        if self.settings.on_upload_done is not None:
            self.settings.on_upload_done()
        if self.settings.on_upload is None:
            return
        try:
            self.settings.on_upload(self.account, final, received_at)
        except Exception:  # the hint must never break the client's upload
            log.exception(
                "sftp upload hook failed login=%s path=%s",
                self.account.login,
                self.shown(str(final)),
            )

    # -- what the client sees of a path

    def shown(self, real: str) -> str:
        """The client's view of a real path (for logs; never reveals the spool location)."""
        if not within(real, self.root):
            return "?"
        return virtual_path(self._rel(real))

    def _rel(self, real: str) -> list[str]:
        """The parts of ``real`` below the root (``..`` parts for a path outside it)."""
        if real == self.root:
            return []
        if real.startswith(self._prefix):
            return real[len(self._prefix) :].split("/")
        return os.path.relpath(real, self.root).split(os.sep)

    # -- refusals

    def refusal(self, what: str, path: str, why: str) -> None:
        """Log a request refused outside this view (by the protocol adapter)."""
        with contextlib.suppress(Refused):
            self._refuse(what, path, why)

    def _refuse(self, what: str, path: str, why: str) -> None:
        self.refusals += 1
        log.info(
            "sftp refused login=%s op=%s path=%r reason=%s",
            self.account.login,
            what,
            path[:256],
            why,
        )
        raise Refused(SFTP_PERMISSION_DENIED, why)
