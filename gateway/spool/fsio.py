"""Crash-safe file writes: a reader never sees a half-written output.

Every output goes to a hidden temporary name in the target folder, is fsynced, renamed into place
and the folder is fsynced, so after a crash the file is either absent or complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gateway.errors import TransientError

log = logging.getLogger(__name__)

TEMP_NAME_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
"""What ``temp_name`` makes: ``.<name>.<8 hex>.tmp``."""


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(root: Path) -> int:
    """Remove, under ``root`` (recursively), the hidden temporaries of ``atomic_writer`` that a
    killed process left behind; returns how many. Only for trees posgate alone writes (outbound
    folders): at start-up no write of this process is under way."""
    removed = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if TEMP_NAME_RE.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                    log.info("removed unfinished output %s", os.path.join(folder, name))
    return removed


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on normal exit it is fsynced and renamed to ``path``.

    On any exception the temporary file is removed and nothing appears under ``path``.
    ``OSError`` (disk full, ...) surfaces as ``TransientError`` so the input stays for a retry.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TransientError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    with atomic_writer(path) as fh:
        fh.write(data)
