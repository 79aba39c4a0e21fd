"""What one SFTP login sees of the spool and may do in it: the paramiko SFTP session interface.

Theory of operation
-------------------
Every account has a root folder (``spool/firms/<id>/`` or ``spool/exchanges/<id>/``) that it sees
as ``/``. A client path is first normalised *lexically*: ``.`` and empty parts are dropped and
``..`` pops one part but never climbs above ``/`` (exactly like a chroot), so ``/../../state`` is
``/state``, which does not exist inside the root. The parts are then joined to the real root and
``os.path.realpath`` resolves any symlink; a result outside the real root is treated as missing.
Permissions are decided on the *resolved* location, so a symlink cannot lend one folder the rights
of another. Names starting with ``.`` are invisible: never listed, never opened, never created.

Who may do what (``rel`` is the resolved path relative to the root):

* exchanges: list, stat and read; nothing else.
* firms: list, stat and read everywhere in their root; create, write and rename files in folders
  strictly below ``inbound/`` (``inbound/dpl/`` and friends, not ``inbound/``
  itself, where no flow would pick a file up); delete files below ``inbound/`` and ``outbound/``
  (so a firm can clean up what it has picked up). No account may make or remove folders (the
  layout is provisioned), create symlinks or read symlink targets.

Uploads never write the visible name. ``open`` for writing creates ``.<name>.<token>.upload`` in
the target folder; writes go there (a write that would pass ``max_file_bytes`` fails and discards
it); only when the client closes the file normally is it fsynced, renamed over the final name
(``os.replace``: uploading an existing name replaces it atomically) and the folder fsynced. If the
session ends with the file still open (connection dropped, client killed) ``session_ended`` removes
the temporary file, so nothing half-written ever appears.

The receipt instant of an upload is the server's clock when the client closed the file (or renamed
it into an inbound folder); it is passed to ``on_upload``. Times a client asks for (``put -p``,
lftp's default) are answered OK and ignored, so no client can date its own submission into another
cycle; an upload's mtime is simply when it was written here. The names live in
``gateway.sftp.paths``; the open files (reads, uploads, stale-upload cleanup) in
``gateway.sftp.handles``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from asyncssh.sftp import SFTPVFSAttrs
from paramiko import SFTPAttributes, SFTPHandle, SFTPServerInterface

from gateway.sftp.handles import (
    ReadHandle,
    UploadHandle,
    partial_path,
    requested_size,
    requested_times,
    upload_temp_name,
)
from gateway.sftp.paths import (
    INBOUND,
    OUTBOUND,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    Refused,
    errno_status,
    fsync_folder,
    split_virtual,
    upload_name_problem,
    virtual_path,
    within,
)

log = logging.getLogger(__name__)

AccountKind = Literal["firm", "exchange"]
ACCOUNT_KINDS: tuple[str, ...] = ("firm", "exchange")

_FILE_MODE = 0o640
_COPY_CHUNK = 1024 * 1024
_WRITE_INTENT = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


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
    # runs the hand-over of closed uploads off the client's path (None: at once, in the caller)
    defer: Callable[[Callable[[], None]], object] | None = None
    # how long an interrupted upload is kept for a resume (0: removed at once)
    resume_keep_s: float = 0.0
    sessions: set[SpoolSftpInterface] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SpoolSftpInterface(SFTPServerInterface):  # type: ignore[misc]
    """One SFTP session of one authenticated account, confined to the account's root.

    paramiko builds it with the ``ServerInterface`` of the connection, whose ``account`` attribute
    is the authenticated ``SftpAccount`` (and whose optional ``session_closed()`` is called when the
    session ends). Each method answers an SFTP status code instead of raising.
    """

    def __init__(self, server: Any, settings: SessionSettings) -> None:
        super().__init__(server)
        account = getattr(server, "account", None)
        if not isinstance(account, SftpAccount):
            raise RuntimeError("an SFTP session needs an authenticated account")
        self.account: SftpAccount = account
        self.settings = settings
        self.root = os.path.realpath(account.root)
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
        kept = 0
        for handle in pending:
            if handle.state == "open":
                kept += self._abandoned(handle)
            handle.discard("aborted")
        with self.settings.lock:
            self.settings.sessions.discard(self)
        # The audit line of the session: who, from where, how long, what went in and out.
        log.info(
            "sftp session ended login=%s peer=%s seconds=%.1f uploads=%d bytes_in=%d "
            "downloads=%d refused=%d dropped=%d",
            self.account.login,
            self._peer,
            time.monotonic() - self._started,
            self.files_in,
            self.bytes_in,
            self.files_out,
            self.refusals,
            len(pending) - kept,
        )
        if self._on_end is not None:
            self._on_end()
        self.ended.set()

    def _abandoned(self, handle: UploadHandle) -> int:
        """An upload still open when its client went away: kept for a resume, or dropped."""
        if self.settings.resume_keep_s > 0 and handle.keep_partial():
            log.warning(
                "sftp upload interrupted login=%s path=%s kept_for_resume_s=%.0f",
                self.account.login,
                self.shown(handle.final),
                self.settings.resume_keep_s,
            )
            return 1
        log.warning(
            "sftp upload abandoned login=%s path=%s reason=session ended before close",
            self.account.login,
            self.shown(handle.final),
        )
        return 0

    def abandon(self, handle: UploadHandle) -> None:
        """An upload whose connection went away before the client closed it."""
        if handle.state == "open":
            self._abandoned(handle)
        handle.discard("aborted")

    def is_folder(self, path: str) -> bool:
        """Whether ``path`` names a folder this account can see."""
        try:
            return os.path.isdir(self._resolve(self._parts(path)))
        except Refused:
            return False

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

    def upload_finished(self, handle: UploadHandle) -> None:
        with self._lock:
            self._uploads.discard(handle)

    def upload_committed(self, handle: UploadHandle, received_at: dt.datetime) -> None:
        """A closed upload is in place: fsync its folder, then tell the intake.

        With ``settings.defer`` this runs after the client has its answer (the file's data is
        fsynced before the rename), so that the next file of a client uploading many is written
        while this folder's journal commit is under way. ``received_at`` is the close instant.
        """
        if self.settings.defer is not None:
            self.settings.defer(lambda: self._hand_over(handle, received_at))
        else:
            self._hand_over(handle, received_at)

    def _hand_over(self, handle: UploadHandle, received_at: dt.datetime) -> None:
        final = Path(handle.final)
        try:
            fsync_folder(str(final.parent))
        except OSError as exc:
            log.error(
                "sftp cannot fsync the folder of an upload login=%s path=%s error=%s",
                self.account.login,
                self.shown(handle.final),
                exc.strerror or exc,
            )
        try:
            size = final.stat().st_size
        except OSError:
            size = -1
        log.info(
            "sftp upload complete login=%s path=%s bytes=%d",
            self.account.login,
            self.shown(handle.final),
            size,
        )
        self.files_in += 1
        self.bytes_in += max(size, 0)
        self._announce(final, received_at)

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

    # -- resolution

    def shown(self, real: str) -> str:
        """The client's view of a real path (for logs; never reveals the spool location)."""
        if not within(real, self.root):
            return "?"
        return virtual_path(self._rel(real))

    def _parts(self, path: str) -> list[str]:
        parts = split_virtual(path)
        if any(p.startswith(".") for p in parts):
            raise Refused(SFTP_NO_SUCH_FILE, "hidden name")
        return parts

    def _resolve(self, parts: list[str]) -> str:
        """The real path of ``parts``, following symlinks only while they stay inside the root."""
        real = os.path.realpath(os.path.join(self.root, *parts))
        if not within(real, self.root):
            raise Refused(SFTP_NO_SUCH_FILE, "outside the root")
        rel = self._rel(real)
        if any(p.startswith(".") for p in rel):
            raise Refused(SFTP_NO_SUCH_FILE, "hidden name")
        return real

    def _rel(self, real: str) -> list[str]:
        if real == self.root:
            return []
        return os.path.relpath(real, self.root).split(os.sep)

    def _entry(self, parts: list[str]) -> tuple[str, str]:
        """(real parent folder, name) for an entry that is created, removed or renamed.

        The parent is resolved; the last part is not followed, so a symlink there is seen as one.
        """
        if not parts:
            raise Refused(SFTP_PERMISSION_DENIED, "the root itself")
        parent = self._resolve(parts[:-1])
        if not os.path.isdir(parent):
            raise Refused(SFTP_NO_SUCH_FILE, "no such folder")
        return parent, parts[-1]

    def _is_firm(self) -> bool:
        return self.account.kind == "firm"

    def _writable_folder(self, real_folder: str) -> bool:
        rel = self._rel(real_folder)
        return self._is_firm() and len(rel) >= 2 and rel[0] == INBOUND

    def _removable_file(self, real_folder: str) -> bool:
        rel = self._rel(real_folder)
        return self._is_firm() and len(rel) >= 1 and rel[0] in (INBOUND, OUTBOUND)

    # -- reading

    def canonicalize(self, path: str) -> str:
        try:
            return virtual_path(split_virtual(path))
        except Refused:
            return "/"

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        try:
            folder = self._resolve(self._parts(path))
            if not os.path.isdir(folder):
                return SFTP_NO_SUCH_FILE
            return list(self._listing(folder))
        except Refused as refused:
            return self._status(refused)
        except OSError as exc:
            return errno_status(exc)

    def _listing(self, folder: str) -> Iterator[SFTPAttributes]:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    continue  # not representable in SFTP v3 paths; never served
                try:
                    if entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if not within(target, self.root) or any(
                            p.startswith(".") for p in self._rel(target)
                        ):
                            continue
                    st = os.stat(entry.path)
                except OSError:
                    continue
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    continue
                yield SFTPAttributes.from_stat(st, name)

    def stat(self, path: str) -> SFTPAttributes | int:
        try:
            parts = self._parts(path)
            real = self._resolve(parts)
            st = self._partial_stat(real) or os.stat(real)
        except Refused as refused:
            return self._status(refused)
        except OSError as exc:
            return errno_status(exc)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return SFTP_NO_SUCH_FILE
        return SFTPAttributes.from_stat(st, parts[-1] if parts else "/")

    def _partial_stat(self, real: str) -> os.stat_result | None:
        """An interrupted upload of ``real``, which a resuming client asks the size of."""
        if self.settings.resume_keep_s <= 0 or not self._writable_folder(os.path.dirname(real)):
            return None
        try:
            return os.lstat(partial_path(real))
        except OSError:
            return None

    def lstat(self, path: str) -> SFTPAttributes | int:
        # Symlinks are followed (inside the root) or invisible; there is no link to describe.
        return self.stat(path)

    def readlink(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        try:
            if flags & _WRITE_INTENT:
                return self._open_upload(path, flags)
            return self._open_read(path, flags)
        except Refused as refused:
            return self._status(refused)
        except OSError as exc:
            return errno_status(exc)

    def _open_read(self, path: str, flags: int) -> SFTPHandle | int:
        real = self._resolve(self._parts(path))
        st = os.stat(real)
        if stat.S_ISDIR(st.st_mode):
            return SFTP_FAILURE
        if not stat.S_ISREG(st.st_mode):
            return SFTP_PERMISSION_DENIED
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return SFTP_PERMISSION_DENIED
        self.files_out += 1
        return ReadHandle(fd, flags)

    # -- writing

    def _open_upload(self, path: str, flags: int) -> SFTPHandle | int:
        parts = split_virtual(path)
        if not self._is_firm():
            self._refuse("write", path, "read-only account")
        if not parts:
            return SFTP_FAILURE
        name = parts[-1]
        problem = upload_name_problem(name)
        if problem is not None:
            self._refuse("write", path, problem)
        parent, _ = self._entry(self._parts_for_entry(parts))
        if not self._writable_folder(parent):
            self._refuse("write", path, "not an inbound folder")
        final = os.path.join(parent, name)
        existing = self._existing_file(final)
        if existing and flags & os.O_EXCL:
            return SFTP_FAILURE
        if not existing and not flags & os.O_CREAT and self._partial_stat(final) is None:
            return SFTP_NO_SUCH_FILE
        temp = os.path.join(parent, upload_temp_name(name))
        resumed = self._take_partial(final, temp, flags)
        fd = os.open(
            temp,
            os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if resumed else os.O_CREAT | os.O_EXCL),
            _FILE_MODE,
        )
        try:
            if existing and not resumed and not flags & os.O_TRUNC:
                self._copy_existing(final, fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        handle = UploadHandle(self, fd, temp, final, flags)
        if self.account.quota_bytes is not None:
            handle.quota_room = self.account.quota_bytes - self.inbound_bytes(but=temp)
        self.upload_started(handle)
        log.debug("sftp upload started login=%s path=%s", self.account.login, self.shown(final))
        return handle

    def _take_partial(self, final: str, temp: str, flags: int) -> bool:
        """Continue an interrupted upload of ``final`` (open without truncation), or forget it.

        The partial is renamed to this upload's temporary name: one session owns it at a time.
        """
        partial = partial_path(final)
        if flags & os.O_TRUNC or self.settings.resume_keep_s <= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)  # a new upload of the name supersedes the interrupted one
            return False
        try:
            os.rename(partial, temp)
        except FileNotFoundError:
            return False
        log.info("sftp upload resumed login=%s path=%s", self.account.login, self.shown(final))
        return True

    def _parts_for_entry(self, parts: list[str]) -> list[str]:
        # Parent parts must not be hidden; the last one was checked as an upload name.
        if any(p.startswith(".") for p in parts[:-1]):
            raise Refused(SFTP_NO_SUCH_FILE, "hidden name")
        return parts

    def _existing_file(self, final: str) -> bool:
        """Whether ``final`` exists; anything there but a regular file is refused."""
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            return False
        if stat.S_ISREG(st.st_mode):
            return True
        if stat.S_ISDIR(st.st_mode):
            raise Refused(SFTP_FAILURE, "a folder has that name")
        raise Refused(SFTP_PERMISSION_DENIED, "not a regular file")

    def _copy_existing(self, final: str, fd: int) -> None:
        """Start the upload from the current content (resume or append without truncation)."""
        src = os.open(final, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(src).st_size > self.settings.max_file_bytes:
                raise Refused(SFTP_FAILURE, "existing file larger than the limit")
            while chunk := os.read(src, _COPY_CHUNK):
                os.write(fd, chunk)
        finally:
            os.close(src)

    def remove(self, path: str) -> int:
        try:
            parent, name = self._entry(self._parts(path))
            if not self._removable_file(parent):
                self._refuse("remove", path, "not allowed here")
            target = os.path.join(parent, name)
            st = os.lstat(target)
            if stat.S_ISDIR(st.st_mode):
                return SFTP_FAILURE
            if not stat.S_ISREG(st.st_mode):
                self._refuse("remove", path, "not a regular file")
            os.unlink(target)
        except Refused as refused:
            return self._status(refused)
        except OSError as exc:
            return errno_status(exc)
        log.info("sftp remove login=%s path=%s", self.account.login, self.shown(target))
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._rename(oldpath, newpath, replace=False)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._rename(oldpath, newpath, replace=True)

    def _rename(self, oldpath: str, newpath: str, *, replace: bool) -> int:
        try:
            if not self._is_firm():
                self._refuse("rename", oldpath, "read-only account")
            src_parent, src_name = self._entry(self._parts(oldpath))
            new_parts = split_virtual(newpath)
            if not new_parts:
                return SFTP_FAILURE
            problem = upload_name_problem(new_parts[-1])
            if problem is not None:
                self._refuse("rename", newpath, problem)
            dst_parent, dst_name = self._entry(self._parts_for_entry(new_parts))
            if not (self._writable_folder(src_parent) and self._writable_folder(dst_parent)):
                self._refuse("rename", oldpath, "both names must be in an inbound folder")
            src = os.path.join(src_parent, src_name)
            dst = os.path.join(dst_parent, dst_name)
            if not stat.S_ISREG(os.lstat(src).st_mode):
                self._refuse("rename", oldpath, "not a regular file")
            if replace:
                self._existing_file(dst)
                os.replace(src, dst)
            else:
                exists = Refused(
                    SFTP_FAILURE,
                    f"{self.shown(dst)} already exists: remove it first or use posix-rename",
                )
                if os.path.lexists(dst):
                    raise exists
                try:
                    os.link(src, dst)
                except FileExistsError:
                    raise exists from None
                os.unlink(src)
            fsync_folder(dst_parent)
            if src_parent != dst_parent:
                fsync_folder(src_parent)
        except Refused as refused:
            return self._status(refused)
        except OSError as exc:
            return errno_status(exc)
        log.info(
            "sftp rename login=%s from=%s to=%s",
            self.account.login,
            self.shown(src),
            self.shown(dst),
        )
        self._announce(Path(dst), self.settings.clock())
        return SFTP_OK

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        """Times and modes of an inbound file are ignored (answered OK, so ``put -p`` works, but
        never applied: a client must not date its own upload); size and owner are refused."""
        try:
            parent, name = self._entry(self._parts(path))
            if not self._writable_folder(parent):
                self._refuse("setstat", path, "not an inbound file")
            target = os.path.join(parent, name)
            if not stat.S_ISREG(os.lstat(target).st_mode):
                self._refuse("setstat", path, "not a regular file")
            if requested_size(attr) is not None:
                self._refuse("setstat", path, "truncating a closed upload")
            if requested_times(attr) is not None:
                log.info(
                    "sftp setstat times ignored login=%s path=%s",
                    self.account.login,
                    self.shown(target),
                )
        except Refused as refused:
            return self._status(refused)
        except OSError as exc:
            return errno_status(exc)
        return SFTP_OK

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        return self._denied("mkdir", path)

    def rmdir(self, path: str) -> int:
        return self._denied("rmdir", path)

    def symlink(self, target_path: str, path: str) -> int:
        return self._denied("symlink", path)

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

    def _denied(self, what: str, path: str) -> int:
        try:
            self._refuse(what, path, "not offered")
        except Refused as refused:
            return self._status(refused)
        return SFTP_OP_UNSUPPORTED  # pragma: no cover
