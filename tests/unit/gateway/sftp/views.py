"""Sessions of a spool view built directly (no network), shared by the SFTP unit tests."""

from __future__ import annotations

import os
from pathlib import Path

from paramiko import SFTPAttributes
from paramiko.sftp import SFTP_OK

from gateway.sftp.account import SessionSettings, SftpAccount
from gateway.sftp.filesystem import SpoolSftpInterface
from gateway.sftp.handles import UploadHandle

WRITE_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC

Uploads = list[tuple[str, Path]]


class Connection:
    """What the SSH layer hands a session: the connection's policy object with its account."""

    def __init__(self, account: SftpAccount) -> None:
        self.account = account
        self.peer = "192.0.2.1"


def make_spool(root: Path) -> Path:
    """Two firms (fa, fb) and one exchange (xch) with a few files, and a ``state/`` beside."""
    for firm in ("fa", "fb"):
        for side in ("inbound", "outbound"):
            for flow in ("dpl", "pmc"):
                (root / "firms" / firm / side / flow).mkdir(parents=True)
    (root / "exchanges" / "xch" / "outbound" / "dpl").mkdir(parents=True)
    (root / "state").mkdir()
    (root / "state" / "ledger.sqlite3").write_bytes(b"ledger")
    (root / "firms" / "fa" / "outbound" / "dpl" / "a.receipt.json").write_text("{}")
    (root / "firms" / "fb" / "inbound" / "dpl" / "b.fixml").write_text("fb's file")
    (root / "exchanges" / "xch" / "outbound" / "dpl" / "DPL_20260105.fixml").write_text("x")
    return root


def session(
    spool: Path,
    login: str = "fa",
    kind: str = "firm",
    max_bytes: int = 10_000,
    quota_bytes: int | None = None,
) -> tuple[SpoolSftpInterface, Uploads]:
    root = spool / ("firms" if kind == "firm" else "exchanges") / login
    account = SftpAccount(login, kind, root, (), quota_bytes)  # type: ignore[arg-type]
    uploads: Uploads = []
    settings = SessionSettings(
        max_file_bytes=max_bytes, on_upload=lambda a, p, at: uploads.append((a.login, p))
    )
    iface = SpoolSftpInterface(Connection(account), settings)
    iface.session_started()
    return iface, uploads


def upload(iface: SpoolSftpInterface, path: str, data: bytes, flags: int = WRITE_NEW) -> None:
    handle = iface.open(path, flags, SFTPAttributes())
    assert isinstance(handle, UploadHandle), handle
    assert handle.write(0, data) == SFTP_OK
    handle.close()


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def names(listing: object) -> list[str]:
    assert isinstance(listing, list), listing
    return sorted(a.filename for a in listing)
