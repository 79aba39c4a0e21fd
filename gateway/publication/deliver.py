"""Delivering a built publication: to an exchange's spool folder, or by SFTP through ``push``.

Owns the choice between the two delivery kinds, the copy into
``spool/exchanges/<id>/outbound/<flow>/`` (``dpl`` for the DPL file, ``ebe`` for the
contrary-intention file; old sidecar off, hidden temporary, rename, sidecar last, so a present
sidecar always describes the complete file beside it), the retries of an SFTP push whose exchange
is unreachable, and the removal of the hidden local temporaries (``.DPL_*.tmp``, ``.CIR_*.tmp``)
a killed run left behind. An ``sftp://`` exchange gets every file in the folder of its URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from pathlib import Path

from gateway.config import Config, Exchange
from gateway.errors import TransientError
from gateway.publication.build import sidecar_text
from gateway.publication.errors import ExchangeUnreachable
from gateway.publication.push import (
    KNOWN_HOSTS_NAME,
    PUSH_KEY_NAME,
    SftpTarget,
    load_or_create_push_key,
    push_over_sftp,
)
from gateway.spool.fsio import fsync_dir, temp_name, write_atomic

log = logging.getLogger(__name__)

_LOCAL_TEMP_RE = re.compile(r"^\.(DPL|CIR)_\d{8}\.fixml(\.sha256)?\.[0-9a-f]{8}\.tmp$")


def exchange_folder(config: Config, exchange_id: str, flow: str = "dpl") -> Path:
    return config.spool.root / "exchanges" / exchange_id / "outbound" / flow


def remove_local_temporaries(folder: Path) -> int:
    """Remove hidden publication temporaries a killed run left in ``folder``; count them."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if _LOCAL_TEMP_RE.match(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    if removed:
        log.info("removed %d unfinished publication file(s) in %s", removed, folder)
    return removed


def deliver(
    config: Config,
    exchange: Exchange,
    built: Path,
    name: str,
    sha256: str,
    *,
    flow: str = "dpl",
    attempts: int = 3,
    backoff_s: float = 1.0,
) -> str:
    """Deliver ``built`` (and its sidecar) to one exchange; returns where it went."""
    if exchange.delivery == "spool":
        folder = exchange_folder(config, exchange.exchange_id, flow)
        return deliver_to_spool(folder, built, name, sha256)
    target = SftpTarget.parse(exchange.delivery)
    key = load_or_create_push_key(config.spool.state_dir / PUSH_KEY_NAME)
    known_hosts = config.spool.state_dir / KNOWN_HOSTS_NAME
    for attempt in range(1, max(1, attempts) + 1):
        try:
            push_over_sftp(target, key, known_hosts, built, name, sha256)
            return target.display
        except ExchangeUnreachable as exc:
            if attempt >= attempts:
                raise
            delay = backoff_s * attempt
            log.warning(
                "push to %s failed (attempt %d/%d), retrying in %.0fs: %s",
                target.display,
                attempt,
                attempts,
                delay,
                exc,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def deliver_to_spool(folder: Path, built: Path, name: str, sha256: str) -> str:
    """Copy ``built`` into an exchange's spool folder: sidecar off, temp, rename, sidecar last."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_local_temporaries(folder)
    final = folder / name
    sidecar = folder / f"{name}.sha256"
    with contextlib.suppress(FileNotFoundError):
        sidecar.unlink()
    tmp = temp_name(final)
    try:
        shutil.copyfile(built, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if tmp.stat().st_size != built.stat().st_size:
            raise OSError(f"copy of {built.name} is incomplete")
        os.replace(tmp, final)
        fsync_dir(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TransientError(f"cannot write {final}: {exc.strerror or exc}") from exc
    write_atomic(sidecar, sidecar_text(sha256, name))
    return str(final)
