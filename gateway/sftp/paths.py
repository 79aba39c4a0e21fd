"""Client paths and names inside an account's root, and the SFTP status a refusal answers with.

A client path is normalised *lexically* like a chroot (``..`` never climbs above ``/``); names an
upload may take are checked here; ``Refused`` carries the status code of a request that may not be
made. Which resolved locations an account may use is ``gateway.sftp.filesystem``'s business.
"""

from __future__ import annotations

import os
import unicodedata

from paramiko import SFTPServer
from paramiko import sftp as _sftp

SFTP_OK: int = _sftp.SFTP_OK
SFTP_FAILURE: int = _sftp.SFTP_FAILURE
SFTP_NO_SUCH_FILE: int = _sftp.SFTP_NO_SUCH_FILE
SFTP_PERMISSION_DENIED: int = _sftp.SFTP_PERMISSION_DENIED
SFTP_OP_UNSUPPORTED: int = _sftp.SFTP_OP_UNSUPPORTED

NAME_MAX_BYTES = 255
# An uploaded name must leave room for the names the gateway derives from it (the claim's
# ``<16 hex>__<name>`` in ``work/``, ``.<stem>.rejects.fixml.<hex>.tmp``, ``<name>.reasons.csv``):
# a longer one could be received but never processed, so it is refused at the upload.
MAX_UPLOAD_NAME_BYTES = 200
# The provisioned folders of an account root that uploads and deletions may touch.
INBOUND = "inbound"
OUTBOUND = "outbound"


class Refused(Exception):
    """A request this account may not make; ``code`` is the SFTP status to answer with."""

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(why or str(code))
        self.code = code


def split_virtual(path: str) -> list[str]:
    """Split a client path into parts below ``/``, resolving ``.`` and ``..`` like a chroot.

    >>> split_virtual("/a/./b/../../../c")
    ['c']
    """
    if "\x00" in path:
        raise Refused(SFTP_NO_SUCH_FILE, "NUL in path")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def virtual_path(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def upload_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the name of an uploaded file, or None when it can."""
    if not name:
        return "empty name"
    if name.startswith("."):
        return "names starting with '.' are reserved"
    if "/" in name or "\x00" in name:
        return "'/' or NUL in name"
    for c in name:
        # Cc: C0/C1 controls; Cf: format characters, among them the bidi overrides and isolates
        # (U+202A-U+202E, U+2066-U+2069) and zero-width ones that make a listing lie about a name.
        if unicodedata.category(c) in ("Cc", "Cf"):
            return f"control or format character U+{ord(c):04X} in name"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if len(encoded) > MAX_UPLOAD_NAME_BYTES:
        return f"name longer than {MAX_UPLOAD_NAME_BYTES} bytes ({len(encoded)})"
    return None


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def errno_status(exc: OSError) -> int:
    code: int = SFTPServer.convert_errno(exc.errno)
    return code
