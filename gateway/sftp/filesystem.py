"""What one SFTP login sees of the spool and may do in it: the file operations of a session.

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
the temporary file (or keeps it hidden for a resume), so nothing half-written ever appears.

The receipt instant of an upload is the server's clock when the client closed the file (or renamed
it into an inbound folder); it is passed to ``on_upload``. Times a client asks for (``put -p``,
lftp's default) are answered OK and ignored, so no client can date its own submission into another
cycle; an upload's mtime is simply when it was written here. The names live in
``gateway.sftp.paths``; the open files (reads, uploads, stale-upload cleanup) in
``gateway.sftp.handles``; the session's bookkeeping (audit line, quota, hand-over of closed uploads
to the intake) in ``gateway.sftp.account``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from paramiko import SFTPAttributes, SFTPHandle, SFTPServerInterface

from gateway.sftp.account import AccountSession
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

_FILE_MODE = 0o640
_COPY_CHUNK = 1024 * 1024
_WRITE_INTENT = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SpoolSftpInterface(AccountSession, SFTPServerInterface):  # type: ignore[misc]
    """One SFTP session of one authenticated account, confined to the account's root.

    Built like an ``AccountSession`` (with the connection's policy object). The methods are those
    of paramiko's ``SFTPServerInterface``: each answers an SFTP status code instead of raising.
    """

    def is_folder(self, path: str) -> bool:
        """Whether ``path`` names a folder this account can see."""
        try:
            return os.path.isdir(self._resolve(self._parts(path)))
        except Refused:
            return False

    # -- resolution

    def _parts(self, path: str) -> list[str]:
        parts = split_virtual(path)
        if any(p.startswith(".") for p in parts):
            raise Refused(SFTP_NO_SUCH_FILE, "hidden name")
        return parts

    def _resolve(self, parts: list[str]) -> str:
        """The real path of ``parts``, following symlinks only while they stay inside the root.

        The result is ``os.path.realpath``'s. The root is real already, so the parts are walked
        from it with one ``lstat`` each (a missing part and the ones after it are taken as
        written, as ``realpath`` does); only a symlink among them sends the whole path through
        ``realpath`` (which would otherwise ``lstat`` every folder above the root too).
        """
        real = self.root
        rel = parts
        for count in range(1, len(parts) + 1):
            candidate = self._prefix + "/".join(parts[:count])
            try:
                is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
            except OSError:
                real = self._prefix + "/".join(parts)
                break
            if is_link:
                real = os.path.realpath(os.path.join(self.root, *parts))
                if not within(real, self.root):
                    raise Refused(SFTP_NO_SUCH_FILE, "outside the root")
                rel = self._rel(real)
                break
            real = candidate
        if any(p.startswith(".") for p in rel):
            raise Refused(SFTP_NO_SUCH_FILE, "hidden name")
        return real

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
        return ReadHandle(self, fd, real, flags)

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
        if log.isEnabledFor(logging.DEBUG):
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

    def _denied(self, what: str, path: str) -> int:
        try:
            self._refuse(what, path, "not offered")
        except Refused as refused:
            return self._status(refused)
        return SFTP_OP_UNSUPPORTED  # pragma: no cover
