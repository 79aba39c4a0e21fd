"""One SFTP session on the wire: asyncssh's SFTP server driving the spool view of an account.

asyncssh decodes the requests and encodes the answers; every decision (confinement, rights,
uploads under a hidden name) stays in ``gateway.sftp.filesystem``, whose methods answer a status
code. This module turns those codes into asyncssh's ``SFTPError`` with the reason the view gave,
converts attributes both ways, and adds what the protocol extensions need:

* ``fsync@openssh.com`` fsyncs the open upload (the close fsyncs it again before the rename: an
  upload is durable before the intake sees it whether or not the client asked);
* ``statvfs@openssh.com`` reports the file system of the account's root;
* ``posix-rename@openssh.com`` replaces an existing name, a plain rename never does (its refusal
  says so);
* ``hardlink@openssh.com``, symlinks and ``rmdir`` are refused with a reason; ``mkdir`` of a
  folder that exists answers "already exists" (``SSH_FX_FILE_ALREADY_EXISTS`` to clients that speak
  SFTP v5 or later, a failure with that text to v3 clients, as the protocol requires);
* ``limits@openssh.com`` is answered by asyncssh itself (4 MiB reads and writes).

An fsync (the client's ``fsync@openssh.com``, or the close of an upload written since its last
fsync) runs in a worker thread so that one upload's disk wait never stalls the other uploads;
only a small one (``inline_sync_bytes``) while no other upload is open on the server runs on the
loop, saving the two thread hand-offs that cost a small file more than the fsync itself. Writes
go straight to the page cache, and a close after the client's fsync only renames (a metadata
change like the open's create, done on the loop). The folder's fsync and the intake's hint
follow in the server's hand-over thread, after the client has its answer: one folder fsync for
the uploads closed within its linger time (``HandOverThread``).

When the connection drops, asyncssh closes every handle still open before it ends the session;
those closes are not the client's, so an upload still open then is dropped (or kept for a
resume), never committed.

Like OpenSSH's ``sftp-server``, a write request with bytes after its data is served and the
extra bytes ignored: Go's ``pkg/sftp`` (rclone and many Go tools) sends such a last write, which
asyncssh on its own answers with "bad message". That is ``TolerantSftpHandler``'s, which only
this server's sessions (``SftpOnlySession``) use.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncssh
from asyncssh.sftp import (
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    FXP_WRITE,
    SFTPAttrs,
    SFTPInvalidHandle,
    SFTPName,
    SFTPServerHandler,
    SFTPVFSAttrs,
)
from asyncssh.stream import SSHServerStreamSession
from paramiko import SFTPAttributes

from gateway.sftp.filesystem import SpoolSftpInterface
from gateway.sftp.handles import ReadHandle, UploadFailed, UploadHandle
from gateway.sftp.paths import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    split_virtual,
)

_DEFAULT_REASON = {
    SFTP_FAILURE: "Failure",
    SFTP_NO_SUCH_FILE: "No such file",
    SFTP_PERMISSION_DENIED: "Permission denied",
    SFTP_OP_UNSUPPORTED: "Operation not supported",
}


class LevelCheckedLogger:
    """An asyncssh logger that checks the level before it formats anything.

    asyncssh's ``SSHLogger.debug1`` converts its arguments (and its callers format packet
    summaries) even when nothing logs at DEBUG: a few microseconds at each of the several debug
    lines of every SFTP request. Everything else is the wrapped logger's.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def debug1(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if self._inner.isEnabledFor(logging.DEBUG):
            self._inner.debug1(msg, *args, **kwargs)

    def debug2(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if self._inner.isEnabledFor(logging.DEBUG):
            self._inner.debug2(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TolerantSftpHandler(SFTPServerHandler):  # type: ignore[misc]
    """asyncssh's SFTP protocol handler, except that a write request may carry bytes after its
    data (they are ignored, as OpenSSH's ``sftp-server`` does), and that its debug lines and
    packet dumps cost nothing while asyncssh's logger does not log at DEBUG.

    asyncssh looks each request's handler up in ``self._packet_handlers``, so a subclass with its
    own table changes the write of this server's sessions only (asyncssh's own server, and any
    other in the process, keep the strict one).
    """

    def __init__(self, server: Any, reader: Any, writer: Any, version: int) -> None:
        self._checked_logger: LevelCheckedLogger | None = None
        super().__init__(server, reader, writer, version)
        self._checked_logger = LevelCheckedLogger(super().logger)

    @property
    def logger(self) -> Any:
        return self._checked_logger or super().logger

    def log_sent_packet(self, pkttype: int, pktid: Any, packet: Any, note: str = "") -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            super().log_sent_packet(pkttype, pktid, packet, note)

    def log_received_packet(self, pkttype: int, pktid: Any, packet: Any, note: str = "") -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            super().log_received_packet(pkttype, pktid, packet, note)

    async def _process_write(self, packet: Any) -> int:
        handle = packet.get_string()
        offset = packet.get_uint64()
        data = packet.get_string()  # whatever follows is ignored
        file_obj = self._file_handles.get(handle)
        if not file_obj:
            raise SFTPInvalidHandle("Invalid file handle")
        result = self._server.write(file_obj, offset, data)
        if inspect.isawaitable(result):
            result = await result
        return int(result)

    _packet_handlers = {**SFTPServerHandler._packet_handlers, FXP_WRITE: _process_write}


class SftpOnlySession(SSHServerStreamSession):  # type: ignore[misc]
    """The SSH session channel of a login: the ``sftp`` subsystem and nothing else (no shell, no
    command, no scp), served by ``TolerantSftpHandler`` over the session ``sftp_factory`` makes.
    """

    def __init__(self, sftp_factory: Callable[[Any], SpoolSftpSession]) -> None:
        super().__init__(None, sftp_factory, 3, False)

    def session_started(self) -> None:
        chan = self._chan
        if chan.get_subsystem() != "sftp":  # pragma: no cover - refused at the request
            chan.close()
            return
        reader: asyncssh.SSHReader[bytes] = asyncssh.SSHReader(self, chan)
        writer: asyncssh.SSHWriter[bytes] = asyncssh.SSHWriter(self, chan)
        handler = TolerantSftpHandler(self._init_sftp_server(), reader, writer, self._sftp_version)
        self._conn.create_task(handler.run(), reader.logger)


def os_flags(pflags: int) -> int:
    """The ``os.open`` flags of SFTP v3 open flags."""
    if pflags & FXF_READ and pflags & FXF_WRITE:
        flags = os.O_RDWR
    elif pflags & FXF_WRITE:
        flags = os.O_WRONLY
    else:
        flags = os.O_RDONLY
    if pflags & FXF_APPEND:
        flags |= os.O_APPEND
    if pflags & FXF_CREAT:
        flags |= os.O_CREAT
    if pflags & FXF_TRUNC:
        flags |= os.O_TRUNC
    if pflags & FXF_EXCL:
        flags |= os.O_EXCL
    return flags


def to_wire(attr: SFTPAttributes) -> SFTPAttrs:
    return SFTPAttrs(
        size=attr.st_size,
        uid=attr.st_uid,
        gid=attr.st_gid,
        permissions=attr.st_mode,
        atime=attr.st_atime,
        mtime=attr.st_mtime,
    )


def from_wire(attrs: SFTPAttrs) -> SFTPAttributes:
    out = SFTPAttributes()
    if attrs.size is not None:
        out.st_size = attrs.size
        out._flags |= SFTPAttributes.FLAG_SIZE
    if attrs.uid is not None or attrs.gid is not None:
        out.st_uid, out.st_gid = attrs.uid or 0, attrs.gid or 0
        out._flags |= SFTPAttributes.FLAG_UIDGID
    if attrs.permissions is not None:
        out.st_mode = attrs.permissions
        out._flags |= SFTPAttributes.FLAG_PERMISSIONS
    if attrs.atime is not None and attrs.mtime is not None:
        out.st_atime, out.st_mtime = int(attrs.atime), int(attrs.mtime)
        out._flags |= SFTPAttributes.FLAG_AMTIME
    return out


def _text(path: bytes) -> str:
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise asyncssh.SFTPNoSuchFile("path is not valid UTF-8") from None


class SpoolSftpSession(asyncssh.SFTPServer):  # type: ignore[misc]
    """asyncssh's SFTP server for one session, answering from ``view``."""

    def __init__(self, chan: Any, view: SpoolSftpInterface) -> None:
        super().__init__(chan)
        self.view = view

    # -- helpers

    def _check(self, result: Any) -> Any:
        """``result`` unless it is a status code other than OK; then the matching SFTPError."""
        if isinstance(result, int) and not isinstance(result, bool):
            if result == SFTP_OK:
                return None
            reason = self.view.take_reason() or _DEFAULT_REASON.get(result, "Failure")
            raise asyncssh.SFTPError(result, reason)
        return result

    def _dropped(self) -> bool:
        """Whether the client is gone (asyncssh is closing the handles it left open).

        A client that quits or dies ends the channel (EOF, then close) or the connection; a
        close request is only ever answered to a client still there, which waits for it.
        """
        chan = self.channel
        return bool(chan.is_closing()) or getattr(chan, "_recv_state", "open") != "open"

    # -- paths

    def realpath(self, path: bytes) -> bytes:
        return self.view.canonicalize(_text(path)).encode("utf-8")

    def stat(self, path: bytes) -> SFTPAttrs:
        return to_wire(self._check(self.view.stat(_text(path))))

    def lstat(self, path: bytes) -> SFTPAttrs:
        return to_wire(self._check(self.view.lstat(_text(path))))

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._check(self.view.chattr(_text(path), from_wire(attrs)))

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self.setstat(path, attrs)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        entries = self._check(self.view.list_folder(_text(path)))
        for attr in entries:
            yield SFTPName(attr.filename.encode("utf-8"), attrs=to_wire(attr))

    def remove(self, path: bytes) -> None:
        self._check(self.view.remove(_text(path)))

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._check(self.view.rename(_text(oldpath), _text(newpath)))

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._check(self.view.posix_rename(_text(oldpath), _text(newpath)))

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        if self.view.is_folder(_text(path)):
            raise asyncssh.SFTPFileAlreadyExists(f"{self.view.canonicalize(_text(path))} exists")
        self._check(self.view.mkdir(_text(path), SFTPAttributes()))

    def rmdir(self, path: bytes) -> None:
        self._check(self.view.rmdir(_text(path)))

    def readlink(self, path: bytes) -> bytes:
        self._check(self.view.readlink(_text(path)))
        raise asyncssh.SFTPPermissionDenied("symlinks are not offered")  # pragma: no cover

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        self._check(self.view.symlink(_text(oldpath), _text(newpath)))

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        self.view.refusal("hardlink", _text(newpath), "hard links are not offered")
        raise asyncssh.SFTPPermissionDenied("hard links are not offered")

    def statvfs(self, path: bytes) -> SFTPVFSAttrs:
        split_virtual(_text(path))
        return self.view.space()

    def fstatvfs(self, file_obj: object) -> SFTPVFSAttrs:
        return self.view.space()

    # -- open files

    def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        return self._check(self.view.open(_text(path), os_flags(pflags), from_wire(attrs)))

    def read(self, file_obj: Any, offset: int, size: int) -> bytes:
        result = file_obj.read(offset, size)
        data: bytes = self._check(result)
        return data

    def write(self, file_obj: Any, offset: int, data: bytes) -> int:
        self._check(file_obj.write(offset, data))
        return len(data)

    def fstat(self, file_obj: Any) -> SFTPAttrs:
        return to_wire(self._check(file_obj.stat()))

    def fsetstat(self, file_obj: Any, attrs: SFTPAttrs) -> None:
        self._check(file_obj.chattr(from_wire(attrs)))

    async def fsync(self, file_obj: Any) -> None:
        if not isinstance(file_obj, UploadHandle):
            return
        if self.view.may_sync_inline(file_obj):
            file_obj.sync()
        else:
            await asyncio.get_running_loop().run_in_executor(None, file_obj.sync)

    async def close(self, file_obj: Any) -> None:
        if isinstance(file_obj, ReadHandle):
            file_obj.close("interrupted" if self._dropped() else "complete")
            return
        if not isinstance(file_obj, UploadHandle):
            return
        if self._dropped():
            self.view.abandon(file_obj)
            return
        try:
            if file_obj.synced or self.view.may_sync_inline(file_obj):
                file_obj.close()  # a rename (like the open's create), after a small fsync
            else:
                await asyncio.get_running_loop().run_in_executor(None, file_obj.close)
        except UploadFailed as exc:
            raise asyncssh.SFTPFailure(str(exc) or "upload failed") from None
        except OSError as exc:
            raise asyncssh.SFTPFailure(os.strerror(exc.errno or errno.EIO)) from None

    def exit(self) -> None:
        self.view.session_ended()
