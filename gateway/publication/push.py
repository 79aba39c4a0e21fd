"""Pushing a built publication to an exchange's SFTP server with paramiko, as the daemon itself.

Owns ``sftp://user@host:port/path`` targets, one push attempt (old sidecar off, upload to
``<name>.<token>.part`` — the conventional in-progress suffix, since the embedded SFTP server
refuses names starting with a dot — rename, sidecar last), for every exchange file (the DPL file
``DPL_<YYYYMMDD>.fixml`` and the contrary-intention file ``CIR_<YYYYMMDD>.fixml`` alike), the
removal of remote temporaries a killed run left,
and the translation of paramiko's errors into ``ExchangeUnreachable`` (retry) or
``DeliveryRefused`` (do not).

Remote host keys are trusted on first use and remembered in ``spool/state/push_known_hosts``
(an admin may pre-seed it with ``ssh-keyscan``); a changed host key refuses the delivery. The
daemon's own client key (``spool/state/push_key``, Ed25519) is created on first use; its ``.pub``
line is what an exchange must authorize.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import paramiko

from gateway.config import Config
from gateway.publication.build import sidecar_text
from gateway.publication.errors import DeliveryRefused, ExchangeUnreachable
from gateway.sftp.keys import create_key_file

log = logging.getLogger(__name__)

PUSH_KEY_NAME = "push_key"
KNOWN_HOSTS_NAME = "push_known_hosts"
SFTP_TIMEOUT_S = 20.0

_REMOTE_TEMP_RE = re.compile(r"^(DPL|CIR)_\d{8}\.fixml(\.sha256)?\.[0-9a-f]{8}\.part$")


@dataclass(frozen=True)
class SftpTarget:
    """``sftp://user@host:port/path``: where and as whom to push; ``folder`` '' is the login dir."""

    user: str
    host: str
    port: int
    folder: str

    @classmethod
    def parse(cls, url: str) -> SftpTarget:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sftp" or not parts.username or not parts.hostname:
            raise DeliveryRefused(f"not an sftp://user@host:port/path delivery: {url!r}")
        try:
            port = parts.port or 22
        except ValueError as exc:
            raise DeliveryRefused(f"bad port in {url!r}") from exc
        return cls(
            urllib.parse.unquote(parts.username),
            parts.hostname,
            port,
            urllib.parse.unquote(parts.path),
        )

    @property
    def display(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.folder}"

    def path(self, name: str) -> str:
        return posixpath.join(self.folder, name) if self.folder else name


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Remember an unknown host's key (logged with its fingerprint); changed keys stay refused."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        client.save_host_keys(str(self.path))
        log.warning(
            "exchange push: trusting the host key of %s on first use (%s %s); recorded in %s",
            hostname,
            key.get_name(),
            key.fingerprint,
            self.path,
        )


def push_over_sftp(
    target: SftpTarget, key: paramiko.PKey, known_hosts: Path, built: Path, name: str, sha256: str
) -> None:
    """One push attempt; raises ExchangeUnreachable (retry) or DeliveryRefused (do not)."""
    if not known_hosts.exists():
        fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(_TrustOnFirstUse(known_hosts))
        try:
            client.connect(
                target.host,
                target.port,
                username=target.user,
                pkey=key,
                timeout=SFTP_TIMEOUT_S,
                banner_timeout=SFTP_TIMEOUT_S,
                auth_timeout=SFTP_TIMEOUT_S,
                channel_timeout=SFTP_TIMEOUT_S,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            raise DeliveryRefused(
                f"host key of {target.host}:{target.port} changed ({exc.key.fingerprint}); "
                f"refusing to push (fix {known_hosts} if the change is expected)"
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise DeliveryRefused(
                f"{target.display} refused our push key ({key.fingerprint}); the exchange must "
                f"authorize the public key in {PUSH_KEY_NAME}.pub"
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ExchangeUnreachable(f"cannot connect to {target.display}: {exc}") from exc
        try:
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(SFTP_TIMEOUT_S)
            _upload(sftp, target, built, name, sha256)
        except (PermissionError, FileNotFoundError) as exc:
            raise DeliveryRefused(f"{target.display}: {exc}") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ExchangeUnreachable(f"transfer to {target.display} failed: {exc}") from exc
    finally:
        client.close()


def _upload(
    sftp: paramiko.SFTPClient, target: SftpTarget, built: Path, name: str, sha256: str
) -> None:
    _remove_remote_temporaries(sftp, target.folder)
    final = target.path(name)
    sidecar = f"{final}.sha256"
    with contextlib.suppress(FileNotFoundError):
        sftp.remove(sidecar)
    token = secrets.token_hex(4)
    tmp = f"{final}.{token}.part"
    try:
        with open(built, "rb") as fh:
            sftp.putfo(fh, tmp, file_size=built.stat().st_size, confirm=True)
        _remote_replace(sftp, tmp, final)
        side_tmp = f"{sidecar}.{token}.part"
        sftp.putfo(io.BytesIO(sidecar_text(sha256, name)), side_tmp, confirm=True)
        _remote_replace(sftp, side_tmp, sidecar)
    except BaseException:
        with contextlib.suppress(Exception):
            sftp.remove(tmp)
        raise


def _remote_replace(sftp: paramiko.SFTPClient, source: str, target: str) -> None:
    """Atomic replace with posix-rename@openssh.com; plain rename after a remove otherwise."""
    try:
        sftp.posix_rename(source, target)
        return
    except (PermissionError, FileNotFoundError):
        raise
    except OSError as exc:
        log.debug("posix_rename unsupported (%s); falling back to remove + rename", exc)
    with contextlib.suppress(FileNotFoundError):
        sftp.remove(target)
    sftp.rename(source, target)


def _remove_remote_temporaries(sftp: paramiko.SFTPClient, folder: str) -> None:
    try:
        names = sftp.listdir(folder or ".")
    except OSError:
        return
    for entry in names:
        if _REMOTE_TEMP_RE.match(entry):
            with contextlib.suppress(OSError):
                sftp.remove(posixpath.join(folder, entry) if folder else entry)


def load_or_create_push_key(path: Path) -> paramiko.PKey:
    """The daemon's own SSH client key for pushing to exchanges; created (Ed25519) on first use.

    ``<path>.pub`` holds the public line the exchange must authorize.
    """
    if not path.exists():
        _create_push_key(path)
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise DeliveryRefused(f"cannot load the push key {path}: {exc}") from exc


def push_public_key(config: Config) -> tuple[Path, str]:
    """(path of the public key file, its line), creating the key pair when missing."""
    path = config.spool.state_dir / PUSH_KEY_NAME
    load_or_create_push_key(path)
    pub = path.with_name(path.name + ".pub")
    return pub, pub.read_text(encoding="ascii").strip()


def _create_push_key(path: Path) -> None:
    if create_key_file(path, "posgate-push"):
        log.info(
            "created the DPL push key %s; exchanges receiving by sftp:// must authorize %s.pub",
            path,
            path.name,
        )
