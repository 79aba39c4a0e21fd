from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from tests.support.daemon import REPO

BROKEN = REPO / "tests" / "data" / "config" / "broken"


def test_shipped_config_loads_with_reference_data() -> None:
    cfg = load_config(REPO / "config" / "posgate.toml")
    assert cfg.spool.root == (REPO / "spool").resolve()
    assert cfg.sftp.port == 2222 and cfg.metrics.port == 9464
    assert cfg.sftp.host == "127.0.0.1" and cfg.metrics.host == "127.0.0.1"
    assert cfg.dpl.publish_time == dt.time(0, 5) and cfg.dpl.deadline_time == dt.time(5, 0)
    cms = {cm.cm_number: cm for cm in cfg.reference.clearing_members}
    assert cms["00005"].active
    assert any(not cm.active for cm in cms.values())
    ncos = {n.nco_id: n for n in cfg.reference.ncos}
    assert ncos["IAN"].dpl_eligible and not all(n.dpl_eligible for n in ncos.values())
    assert any(e.receives_dpl for e in cfg.reference.exchanges)
    firm = cfg.firm_account("00005")
    assert firm is not None and firm.submits_for == ("00005",)
    assert firm.public_keys and firm.public_keys[0].startswith("ssh-ed25519 ")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "posgate"
    shutil.copytree(REPO / "config" / "reference", folder / "reference")
    (folder / "posgate.toml").write_text('[spool]\nroot = "../../data/spool"\n')
    cfg = load_config(folder / "posgate.toml")
    assert cfg.spool.root == (tmp_path / "data" / "spool").resolve()
    assert cfg.reference_dir == folder / "reference"
    assert cfg.accounts == ()


def test_broken_config_names_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(BROKEN / "posgate.toml")
    text = "\n".join(info.value.problems)
    expected = [
        ("posgate.toml:5", "sftp.port"),
        ("posgate.toml:6", "sftp.max_file_bytes"),
        ("posgate.toml:7", "sftp.colour"),
        ("posgate.toml:13", "dpl.publish_time"),
        ("posgate.toml:16", "daemon.log_format"),
        ("posgate.toml:18", "nonsense"),
        ("clearing_members.csv:3", "active"),
        ("clearing_members.csv", "duplicate cm_number 5"),
        ("ncos.csv:1", "dpl_eligible"),
        ("exchanges.csv:2", "delivery"),
        ("occ_holidays.csv:2", "date"),
        ("occ_holidays.csv:3", "action"),
        ("bad.toml", "account.name"),
        ("bad.toml", "account.kind"),
    ]
    for where, what in expected:
        assert any(where in p and what in p for p in info.value.problems), (where, what, text)
    assert "'2026-13-01'" in text and "'maybe'" in text and "'24:99'" in text and "70000" in text


def test_missing_reference_file_is_reported(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "reference", tmp_path / "reference")
    (tmp_path / "reference" / "ncos.csv").unlink()
    (tmp_path / "posgate.toml").write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "posgate.toml")
    assert any("ncos.csv" in p and "missing" in p for p in info.value.problems)


def test_amqp_password_never_from_toml(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "reference", tmp_path / "reference")
    (tmp_path / "posgate.toml").write_text('[amqp]\nusername = "svc"\npassword = "secret"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "posgate.toml")
    assert any("amqp.password" in p and "unknown key" in p for p in info.value.problems)
    (tmp_path / "posgate.toml").write_text('[amqp]\nusername = "svc"\n')
    cfg = load_config(tmp_path / "posgate.toml", environ={"POSGATE_AMQP_PASSWORD": "s3"})
    assert cfg.amqp.password == "s3" and "s3" not in repr(cfg.amqp)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "amqp_password").write_text("from-systemd\n")
    cfg = load_config(tmp_path / "posgate.toml", environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.amqp.password == "from-systemd"


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_check_config_exit_codes() -> None:
    ok = _check_config(REPO / "config" / "posgate.toml")
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout
    bad = _check_config(BROKEN / "posgate.toml")
    assert bad.returncode == 78
    assert "sftp.port" in bad.stderr and "occ_holidays.csv:3" in bad.stderr


SK_KEY = (
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIBw0KBVfLwlXk1+Mli/7V"
    "xhGtAOqZd6qFWCXpQ2qOeXSAAAABHNzaDo= ops@firm"
)


def test_public_keys_are_parsed_for_real(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "reference", tmp_path / "reference")
    good = ed25519_line()
    corrupted = good.split()[0] + " " + good.split()[1][:-12] + "AAAAAAAAAAA= x"
    retyped = "ssh-rsa " + good.split()[1]
    (tmp_path / "posgate.toml").write_text(
        f'[[account]]\nname = "00005"\nkind = "firm"\nid = "00005"\n'
        f'public_keys = ["{good}", "{SK_KEY}"]\n'
        f'[[account]]\nname = "00006"\nkind = "firm"\nid = "00006"\n'
        f'public_keys = ["{corrupted}", "{retyped}"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "posgate.toml")
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert any("unreadable public key" in p for p in problems)
    assert any("mismatch" in p for p in problems)  # an ssh-rsa line holding an Ed25519 key
    (tmp_path / "posgate.toml").write_text(
        f'[[account]]\nname = "00005"\nkind = "firm"\nid = "00005"\n'
        f'public_keys = ["{good}", "{SK_KEY}"]\n'
    )
    (account,) = load_config(tmp_path / "posgate.toml").accounts
    assert account.public_keys == (good, SK_KEY)  # a security key is a key, not a file name


def ed25519_line() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " ops@firm"
