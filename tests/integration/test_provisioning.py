"""firm/exchange provisioning through the CLI, taken up by the running daemon on SIGHUP."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import REPO, DaemonProcess, TestConfig, make_keypair, wait_for
from tests.support.firm import SFTP, run_sftp

pytestmark = pytest.mark.skipif(SFTP is None, reason="OpenSSH sftp missing")


def posgate(cfg: TestConfig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(cfg.path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def sftp_ls(
    cfg: TestConfig, login: str, key: Path, folder: str
) -> subprocess.CompletedProcess[str]:
    return run_sftp(cfg, f"ls {folder}\n", login=login, key=key, batch_name=f"ls-{login}.txt")


def test_firm_add_list_remove_with_reload(daemon: DaemonProcess) -> None:
    cfg = daemon.cfg
    key, _ = make_keypair(cfg.root / "keys", "firm00352")
    assert sftp_ls(cfg, "00352", key, "/").returncode != 0  # not provisioned yet

    added = posgate(
        cfg,
        "firm",
        "add",
        "00352",
        "--key",
        str(key.with_suffix(".pub")),
        "--submits-for",
        "00352,IAN",
        "--amqp-user",
        "jpm-api",
    )
    assert added.returncode == 0, added.stderr
    assert (cfg.spool / "firms" / "00352" / "inbound" / "dpl").is_dir()
    listed = posgate(cfg, "firm", "list")
    assert "00352" in listed.stdout and "00352,IAN" in listed.stdout and "jpm-api" in listed.stdout
    assert "SHA256:" in listed.stdout

    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.metric("posgate_config_reloads_total", {"outcome": "ok"}) == 1, what="reload"
    )
    result = sftp_ls(cfg, "00352", key, "/inbound")
    assert result.returncode == 0, result.stderr
    assert "dpl" in result.stdout

    again = posgate(cfg, "firm", "add", "00352", "--key", str(key.with_suffix(".pub")))
    assert again.returncode == 1 and "already exists" in again.stderr

    removed = posgate(cfg, "firm", "remove", "00352")
    assert removed.returncode == 0, removed.stderr
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.metric("posgate_config_reloads_total", {"outcome": "ok"}) == 2,
        what="second reload",
    )
    assert sftp_ls(cfg, "00352", key, "/").returncode != 0
    assert (cfg.spool / "firms" / "00352").is_dir()  # data kept


def test_exchange_add_gives_a_read_only_login(daemon: DaemonProcess) -> None:
    cfg = daemon.cfg
    key, _ = make_keypair(cfg.root / "keys", "xcbo")
    added = posgate(cfg, "exchange", "add", "XCBO", "--key", str(key.with_suffix(".pub")))
    assert added.returncode == 0, added.stderr
    assert "XCBO" in posgate(cfg, "exchange", "list").stdout
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.metric("posgate_config_reloads_total", {"outcome": "ok"}) == 1, what="reload"
    )
    (cfg.spool / "exchanges" / "XCBO" / "outbound" / "dpl" / "DPL_20261120.fixml").write_text("")
    listing = sftp_ls(cfg, "XCBO", key, "/outbound/dpl")
    assert listing.returncode == 0 and "DPL_20261120.fixml" in listing.stdout


def test_bad_key_file_is_refused(test_config: TestConfig) -> None:
    bogus = test_config.root / "bogus.pub"
    bogus.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    result = posgate(test_config, "firm", "add", "00161", "--key", str(bogus))
    assert result.returncode == 65 and "not an OpenSSH public key" in result.stderr
    assert not (test_config.root / "config" / "accounts" / "00161.toml").exists()


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="needs root to change owners")
def test_firm_add_as_root_gives_new_folders_to_the_spool_owner(test_config: TestConfig) -> None:
    import os

    spool = test_config.spool
    spool.mkdir(parents=True, exist_ok=True)
    os.chown(spool, 65534, 65534)  # the daemon's user owns the spool
    key, _ = make_keypair(test_config.root / "keys", "firm00161")
    result = posgate(test_config, "firm", "add", "00161", "--key", str(key.with_suffix(".pub")))
    assert result.returncode == 0, result.stderr
    for folder in (
        spool / "firms" / "00161",
        spool / "firms" / "00161" / "inbound" / "dpl",
        spool / "firms" / "00161" / "outbound" / "pmc",
    ):
        assert (folder.stat().st_uid, folder.stat().st_gid) == (65534, 65534), folder


def test_key_text_json_list_unknown_firm_and_exchange_remove(test_config: TestConfig) -> None:
    import json

    cfg = test_config
    _, line = make_keypair(cfg.root / "keys", "k00161")
    added = posgate(cfg, "firm", "add", "00161", "--key", line)  # the key text itself
    assert added.returncode == 0, added.stderr
    listed = json.loads(posgate(cfg, "firm", "list", "--format", "json").stdout)
    entry = next(a for a in listed if a["id"] == "00161")
    assert entry["login"] == "00161" and entry["keys"][0].startswith("SHA256:")

    unknown = posgate(cfg, "firm", "add", "12345", "--key", line)
    assert unknown.returncode == 65 and "clearing_members.csv" in unknown.stderr
    assert not (cfg.root / "config" / "accounts" / "12345.toml").exists()
    forced = posgate(cfg, "firm", "add", "12345", "--key", line, "--force")
    assert forced.returncode == 0, forced.stderr

    missing_key = posgate(cfg, "firm", "add", "00390", "--key", str(cfg.root / "nope.pub"))
    assert missing_key.returncode == 66

    assert posgate(cfg, "exchange", "add", "XCBO", "--key", line).returncode == 0
    assert posgate(cfg, "exchange", "remove", "XCBO").returncode == 0
    assert json.loads(posgate(cfg, "exchange", "list", "--format", "json").stdout) == []
    assert posgate(cfg, "exchange", "remove", "XCBO").returncode == 1
