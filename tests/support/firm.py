"""The test firm 00005 seen from outside the daemon: its OpenSSH ``sftp`` logins, files dropped
into its inbound folders, and a remote exchange (an embedded SFTP server) to push files to."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gateway.sftp import SftpAccount, SftpServer
from tests.support.daemon import TestConfig

SFTP = shutil.which("sftp")
FIRM = "00005"


def sftp_argv(
    cfg: TestConfig, batch: str, *, login: str = FIRM, key: Path | None = None
) -> list[str]:
    """The OpenSSH client's command line for ``login`` (key: the test firm's) on the daemon's
    SFTP port, non-interactive, reading its commands from the file ``batch`` ("-": stdin)."""
    return [
        SFTP or "sftp",
        "-b", batch,
        "-i", str(key or cfg.firm_key),
        "-P", str(cfg.sftp_port),
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        f"{login}@127.0.0.1",
    ]  # fmt: skip


def run_sftp(
    cfg: TestConfig,
    commands: str,
    *,
    login: str = FIRM,
    key: Path | None = None,
    batch_name: str = "batch.txt",
) -> subprocess.CompletedProcess[str]:
    """Run one batch of sftp ``commands`` as ``login``; the caller checks the outcome."""
    batch = cfg.root / batch_name
    batch.write_text(commands)
    return subprocess.run(
        sftp_argv(cfg, str(batch), login=login, key=key),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cfg.root,
    )


def quoted(path: str) -> str:
    """A path in sftp's batch syntax: double quotes, backslash escapes."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SftpSession:
    """One long-lived OpenSSH ``sftp`` client reading its commands from a pipe, so that a
    ``put`` is written at a chosen instant on an already open connection. As a context manager
    it ends with ``bye`` (and checks the client's exit), or is killed when the block fails."""

    def __init__(self, cfg: TestConfig) -> None:
        self.proc = subprocess.Popen(
            sftp_argv(cfg, "-"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=cfg.root,
        )

    def __enter__(self) -> SftpSession:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()  # the client ends cleanly
        elif self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.poll() is None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        _, err = self.proc.communicate(b"bye\n", timeout=30)
        assert self.proc.returncode == 0, err.decode()


def firm_folder(cfg: TestConfig, side: str, flow: str, firm: str = FIRM) -> Path:
    """A firm's ``inbound`` or ``outbound`` folder of one flow in the daemon's spool."""
    return cfg.spool / "firms" / firm / side / flow


def drop_file(cfg: TestConfig, name: str, data: bytes, flow: str = "dpl") -> Path:
    """Put a complete file into the firm's inbound folder the way an upload appears: written under
    a hidden name, then renamed."""
    inbound = firm_folder(cfg, "inbound", flow)
    hidden = inbound / f".{name}.tmp"
    hidden.write_bytes(data)
    return hidden.rename(inbound / name)


@dataclass
class RemoteExchange:
    """A separate embedded SFTP server playing an exchange's drop folder.

    The embedded server makes exchange roots read-only, so the remote is a *firm-kind* account
    (``xdrop``) whose ``inbound/dpl/`` accepts uploads and renames, as a production exchange's
    server must. ``keys`` are the public key lines it accepts (the daemon's push key).
    """

    server: SftpServer
    root: Path
    keys: list[str] = field(default_factory=list)

    @property
    def drop(self) -> Path:
        return self.root / "inbound" / "dpl"

    @property
    def url(self) -> str:
        return f"sftp://xdrop@127.0.0.1:{self.server.port}/inbound/dpl"


@contextmanager
def remote_exchange(folder: Path, max_file_bytes: int = 1 << 20) -> Iterator[RemoteExchange]:
    """A started ``RemoteExchange`` with its files under ``folder``; stopped on exit."""
    root = folder / "remote"
    (root / "inbound" / "dpl").mkdir(parents=True)
    keys: list[str] = []
    server = SftpServer(
        host="127.0.0.1",
        port=0,
        host_key_path=folder / "remote-host-key",
        accounts=lambda: {"xdrop": SftpAccount("xdrop", "firm", root, tuple(keys))},
        max_file_bytes=max_file_bytes,
        failed_login_delay_s=0.0,
    )
    server.start()
    try:
        yield RemoteExchange(server, root, keys)
    finally:
        server.stop(timeout=5)
