"""SSH key pairs posgate makes for itself (the SFTP host key, the DPL push key) and fingerprints.

A key is created once: the private key is written with mode 0600 (parent folder 0700) under a
temporary name and hard-linked into place, so a crash never leaves a half-written key and two
processes starting together never end up with two different keys. ``<path>.pub`` gets the public
line (for ``known_hosts`` or an ``authorized_keys`` file).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path

import paramiko

from gateway.spool.fsio import fsync_dir, write_atomic


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a key blob (``SHA256:...``)."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def fingerprint_of_line(key_line: str) -> str:
    """The fingerprint of an OpenSSH public key line (``ssh-ed25519 AAAA... comment``)."""
    return fingerprint(base64.b64decode(key_line.split()[1]))


def generate_key_pair(comment: str) -> tuple[bytes, str]:
    """(private key file bytes, public key line) of a new Ed25519 key (RSA 3072 where the
    cryptography backend has no Ed25519)."""
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return pem, f"{public.decode('ascii')} {comment}"
    except (ImportError, UnsupportedAlgorithm):
        rsa = paramiko.RSAKey.generate(3072)
        buf = io.StringIO()
        rsa.write_private_key(buf)
        return buf.getvalue().encode("ascii"), f"{rsa.get_name()} {rsa.get_base64()} {comment}"


def create_key_file(path: Path, comment: str) -> bool:
    """Create a key pair at ``path`` (and ``<path>.pub``) unless one exists.

    Returns False when another process created it meanwhile (its key is kept).
    """
    pem, public_line = generate_key_pair(comment)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key another process created meanwhile
    except FileExistsError:
        os.unlink(tmp)
        return False
    os.unlink(tmp)
    write_atomic(path.with_name(path.name + ".pub"), (public_line + "\n").encode("ascii"))
    fsync_dir(path.parent)
    return True
