"""SFTP server pieces without a network: key lines, host key creation, failed-login delays."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.sftp.auth import FAILURE_MEMORY_S, LoginThrottle, public_key_blob
from gateway.sftp.keys import fingerprint
from gateway.sftp.server import SftpStartError, load_or_create_host_key


def new_public_line(comment: str = "ops@firm") -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def test_public_key_lines_give_their_blob_with_or_without_comment_and_options() -> None:
    line = new_public_line()
    blob = base64.b64decode(line.split()[1])
    assert public_key_blob(line) == blob
    assert public_key_blob(" ".join(line.split()[:2])) == blob
    assert public_key_blob(f'from="10.0.0.0/8",no-pty {line}') == blob


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not a key",
        "ssh-ed25519 !!!notbase64!!! c",
        # a valid blob announced under the wrong type
        "ssh-rsa " + new_public_line().split()[1],
    ],
)
def test_unusable_key_lines_give_nothing(line: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert public_key_blob(line) is None


def test_fingerprint_is_openssh_sha256_form() -> None:
    blob = base64.b64decode(new_public_line().split()[1])
    fp = fingerprint(blob)
    assert fp.startswith("SHA256:") and len(fp) == len("SHA256:") + 43 and "=" not in fp


def test_host_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "sftp_host_key"
    first = load_or_create_host_key(path)
    assert first.get_algorithm() == "ssh-ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    pub = (tmp_path / "state" / "keys" / "sftp_host_key.pub").read_text().split()
    assert pub[:2] == ["ssh-ed25519", base64.b64encode(first.public_data).decode()]
    second = load_or_create_host_key(path)
    assert second.public_data == first.public_data
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_an_existing_rsa_host_key_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "host_rsa"
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(path))
    assert load_or_create_host_key(path).public_data == key.asbytes()


def test_an_unreadable_host_key_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "host"
    path.write_text("garbage\n")
    with pytest.raises(SftpStartError, match="host key"):
        load_or_create_host_key(path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_login_delay_doubles_per_peer_up_to_a_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(0.5, clock=clock)
    delays = [throttle.failure("198.51.100.7") for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert throttle.failure("203.0.113.9") == 0.5  # another peer starts afresh


def test_failed_login_delay_is_forgotten_after_success_or_quiet_time() -> None:
    clock = Clock()
    throttle = LoginThrottle(1.0, clock=clock)
    throttle.failure("p")
    throttle.failure("p")
    throttle.success("p")
    assert throttle.failure("p") == 1.0
    throttle.failure("p")
    clock.now += FAILURE_MEMORY_S + 1
    assert throttle.failure("p") == 1.0


def test_zero_delay_means_no_delay() -> None:
    throttle = LoginThrottle(0.0)
    assert [throttle.failure("p") for _ in range(3)] == [0.0, 0.0, 0.0]


def test_another_logins_success_does_not_reset_the_penalty_of_an_address() -> None:
    now = [0.0]
    throttle = LoginThrottle(1.0, clock=lambda: now[0])
    for _ in range(3):
        throttle.failure("203.0.113.9", "victim")  # guessing another firm's login
    throttle.success("203.0.113.9", "attacker")  # then logging in with its own account
    assert throttle.failure("203.0.113.9", "victim") == 8.0
    throttle.failure("203.0.113.9", "attacker")
    throttle.success("203.0.113.9", "attacker")  # its own typo is forgiven, the rest is not
    assert throttle.failure("203.0.113.9", "victim") == 16.0
