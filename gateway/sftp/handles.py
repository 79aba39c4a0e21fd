"""The open files of an SFTP session: plain reads, and crash-safe uploads.

An upload never writes the visible name: it goes to ``.<name>.<token>.upload`` in the target
folder, a write that would pass ``max_file_bytes`` fails and discards it, and only a normal close
fsyncs it and renames it over the final name (the folder is fsynced before the intake is told).
Temporary files left by a daemon that was killed are removed by ``remove_stale_uploads`` at the
next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from paramiko import SFTPAttributes, SFTPHandle

from gateway.sftp.paths import (
    INBOUND,
    NAME_MAX_BYTES,
    SFTP_FAILURE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
    Refused,
    errno_status,
    fsync_folder,
)

if TYPE_CHECKING:
    from gateway.sftp.account import AccountSession

log = logging.getLogger(__name__)

UPLOAD_SUFFIX = ".upload"
PARTIAL_SUFFIX = ".partial"
_TOKEN_HEX = 12
STALE_UPLOAD_RE = re.compile(r"^\..*\.[0-9a-f]{12}\.upload$", re.DOTALL)


class UploadFailed(Exception):
    """Raised from ``close`` so that the client gets a failure status for its close request."""


def upload_temp_name(name: str) -> str:
    """A hidden temporary name for an upload of ``name`` that fits the 255-byte name limit."""
    token = secrets.token_hex(_TOKEN_HEX // 2)
    room = NAME_MAX_BYTES - len(token) - len(UPLOAD_SUFFIX) - 2
    stem = name.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return f".{stem}.{token}{UPLOAD_SUFFIX}"


def partial_path(final: str) -> str:
    """Where an interrupted upload of ``final`` waits to be resumed: ``.<name>.partial``."""
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}{PARTIAL_SUFFIX}")


def remove_expired_partials(root: Path, keep_s: float, now: float) -> int:
    """Delete interrupted uploads under ``root/inbound`` not resumed within ``keep_s``; count."""
    removed = 0
    inbound = root / INBOUND
    if not inbound.is_dir():
        return 0
    for folder, dirs, files in os.walk(inbound, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not (name.startswith(".") and name.endswith(PARTIAL_SUFFIX)):
                continue
            path = os.path.join(folder, name)
            try:
                if now - os.lstat(path).st_mtime > keep_s:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def remove_stale_uploads(root: Path) -> int:
    """Delete upload temporary files left under ``root/inbound`` by a previous run; count them."""
    removed = 0
    inbound = root / INBOUND
    if not inbound.is_dir():
        return 0
    for folder, dirs, files in os.walk(inbound, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if STALE_UPLOAD_RE.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


class ReadHandle(SFTPHandle):  # type: ignore[misc]
    """An open file for reading: positional reads on a file descriptor; its close writes the
    session's audit line of the download (the bytes served)."""

    def __init__(self, session: AccountSession, fd: int, real: str, flags: int) -> None:
        super().__init__(flags)
        self._session = session
        self._fd = fd
        self.real = real
        self._closed = False
        self._opened = time.monotonic()
        self.bytes = 0  # served so far

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as exc:
            return errno_status(exc)
        self.bytes += len(data)
        return data

    def write(self, offset: int, data: bytes) -> int:
        return SFTP_PERMISSION_DENIED

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Where data or holes are (``ranges@asyncssh.com`` asks with SEEK_DATA/SEEK_HOLE)."""
        return os.lseek(self._fd, offset, whence)

    def stat(self) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.fstat(self._fd))
        except OSError as exc:
            return errno_status(exc)

    def chattr(self, attr: SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def close(self, outcome: str = "complete") -> None:
        """Closed by the client (``complete``), or after it went away (``interrupted``)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)
            seconds = time.monotonic() - self._opened
            self._session.transfer_ended("download", self.real, self.bytes, seconds, outcome)


class UploadHandle(SFTPHandle):  # type: ignore[misc]
    """A file being uploaded: written under a hidden name, renamed into place on a normal close.

    States: ``open`` -> ``committed`` (closed normally and renamed), or ``failed`` (a write was
    refused; the temporary file is already gone; the close is answered with a failure), or
    ``aborted`` (the session ended first; the temporary file is gone).
    """

    def __init__(
        self,
        session: AccountSession,
        fd: int,
        temp: str,
        final: str,
        flags: int,
    ) -> None:
        super().__init__(flags)
        self._session = session
        self._fd = fd
        self.temp = temp
        self.final = final
        self._append = bool(flags & os.O_APPEND)
        self._exclusive = bool(flags & os.O_EXCL)
        self.state = "open"
        self._dirty = True  # written since the last fsync
        self.quota_room: int | None = None  # bytes this upload may grow to (account quota)
        self.size = 0  # the end of its furthest write (its size once committed)
        self._opened = time.monotonic()
        self.closed_after = 0.0  # seconds from the open to the client's close

    def seconds(self) -> float:
        """Seconds since the upload was opened."""
        return time.monotonic() - self._opened

    # -- data

    def write(self, offset: int, data: bytes) -> int:
        if self.state != "open":
            return SFTP_FAILURE
        try:
            if self._append:
                offset = os.fstat(self._fd).st_size
            limit = self._session.settings.max_file_bytes
            if self.quota_room is not None and offset + len(data) > self.quota_room:
                log.warning(
                    "sftp upload refused login=%s path=%s reason=quota of %d bytes reached",
                    self._session.account.login,
                    self._session.shown(self.final),
                    self._session.account.quota_bytes,
                )
                self.discard("failed")
                self._session.refused_quota()
                return SFTP_FAILURE
            if offset + len(data) > limit:
                log.warning(
                    "sftp upload refused login=%s path=%s reason=larger than %d bytes",
                    self._session.account.login,
                    self._session.shown(self.final),
                    limit,
                )
                self.discard("failed")
                return SFTP_FAILURE
            self._dirty = True
            self.size = max(self.size, offset + len(data))
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            log.warning(
                "sftp upload write failed login=%s path=%s error=%s",
                self._session.account.login,
                self._session.shown(self.final),
                exc.strerror or exc,
            )
            self.discard("failed")
            return errno_status(exc)
        return SFTP_OK

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self.state != "open":
            raise OSError(9, "upload no longer open")
        return os.lseek(self._fd, offset, whence)

    def read(self, offset: int, length: int) -> bytes | int:
        if self.state != "open":
            return SFTP_FAILURE
        try:
            return os.pread(self._fd, length, offset)
        except OSError as exc:
            return errno_status(exc)

    def stat(self) -> SFTPAttributes | int:
        if self.state != "open":
            return SFTP_FAILURE
        try:
            return SFTPAttributes.from_stat(os.fstat(self._fd))
        except OSError as exc:
            return errno_status(exc)

    def chattr(self, attr: SFTPAttributes) -> int:
        if self.state != "open":
            return SFTP_FAILURE
        try:
            times = requested_times(attr)
            size = requested_size(attr)
        except Refused as refused:
            return refused.code
        if size is not None:
            if size > self._session.settings.max_file_bytes:
                return SFTP_FAILURE
            try:
                os.ftruncate(self._fd, size)
                self._dirty = True
            except OSError as exc:
                return errno_status(exc)
        if times is not None:  # never applied: the server's clock dates an upload (see filesystem)
            log.info(
                "sftp setstat times ignored login=%s path=%s",
                self._session.account.login,
                self._session.shown(self.final),
            )
        return SFTP_OK

    # -- endings

    def close(self) -> None:
        """A normal close by the client: commit. Raises ``UploadFailed`` to report a failure."""
        self.closed_after = self.seconds()
        if self.state == "failed":
            self._session.transfer_ended(
                "upload", self.final, self.size, self.closed_after, "failed"
            )
            self.discard("aborted")
            raise UploadFailed(f"upload of {self._session.shown(self.final)} failed")
        if self.state != "open":
            return
        received_at = self._session.settings.clock()  # the close instant, before the fsync
        try:
            self._commit()
        except OSError as exc:
            log.error(
                "sftp upload could not be completed login=%s path=%s error=%s",
                self._session.account.login,
                self._session.shown(self.final),
                exc.strerror or exc,
            )
            self.discard("aborted")
            self._session.transfer_ended(
                "upload", self.final, self.size, self.closed_after, "failed"
            )
            raise UploadFailed(exc.strerror or "upload failed") from exc
        self.state = "committed"
        self._session.upload_committed(self, received_at)

    @property
    def synced(self) -> bool:
        """Whether all that was written is fsynced already (the client's ``fsync@openssh.com``
        came after its last write), so that a close has only the rename left to do."""
        return self.state == "open" and not self._dirty

    def sync(self) -> None:
        """fsync@openssh.com: make what was written so far durable."""
        if self.state == "open":
            os.fsync(self._fd)
            self._dirty = False

    def keep_partial(self) -> bool:
        """The connection went away: keep what was written, hidden, for a resume. False if empty.

        The data is fsynced and renamed to ``partial_path(final)`` (replacing an older one), so
        that a ``reput`` / ``put -c`` of the same name continues from its size, even after a
        restart of the daemon.
        """
        if self.state != "open":
            return False
        try:
            self.size = os.fstat(self._fd).st_size
            if self.size == 0:
                return False
            os.fsync(self._fd)
            os.close(self._fd)
            self.state = "aborted"
            os.replace(self.temp, partial_path(self.final))
            fsync_folder(os.path.dirname(self.final))
        except OSError as exc:
            log.warning(
                "sftp cannot keep an interrupted upload login=%s path=%s error=%s",
                self._session.account.login,
                self._session.shown(self.final),
                exc.strerror or exc,
            )
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
        self.state = "aborted"
        self._session.upload_finished(self)
        return True

    def discard(self, state: str) -> None:
        """Forget the upload: close and delete the temporary file.

        ``failed`` keeps the handle known to the session until its close has been answered with
        a failure; ``aborted`` is final.
        """
        was_open = self.state == "open"
        self.state = state
        if was_open:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
        if state != "failed":
            self._session.upload_finished(self)

    def _commit(self) -> None:
        if self._dirty:  # a client's fsync@openssh.com right before the close already did it
            os.fsync(self._fd)
        self.size = os.fstat(self._fd).st_size
        os.close(self._fd)
        self._fd = -1
        if self._exclusive:
            os.link(self.temp, self.final)  # never replaces: the client asked for O_EXCL
            os.unlink(self.temp)
        else:
            os.replace(self.temp, self.final)
        # The folder is fsynced by the session before the intake hears of the file (it may do so
        # after the client has its answer: the data itself is durable by now).
        self._session.upload_finished(self)


def requested_times(attr: SFTPAttributes) -> tuple[int, int] | None:
    flags = attr._flags
    if flags & SFTPAttributes.FLAG_UIDGID:
        raise Refused(SFTP_PERMISSION_DENIED, "changing owners is not allowed")
    if flags & SFTPAttributes.FLAG_AMTIME:
        return (int(attr.st_atime), int(attr.st_mtime))
    return None


def requested_size(attr: SFTPAttributes) -> int | None:
    if attr._flags & SFTPAttributes.FLAG_SIZE:
        return int(attr.st_size)
    return None
