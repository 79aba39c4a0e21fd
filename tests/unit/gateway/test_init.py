"""``posgate init DIR``: the shipped config and ops files laid out, loadable, admin edits kept."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.shipped_files import SHIPPED, set_spool_root, shipped_files, shipped_root
from tests.support.daemon import REPO


def posgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"}
    env["PYTHONPATH"] = str(REPO)  # the checkout's code, run from a folder outside it
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_the_shipped_selection_is_the_ops_files_and_no_secret() -> None:
    names = shipped_files(REPO)
    assert shipped_root() == REPO  # a checkout reads config/ and systemd/ in place
    for wanted in (
        "config/posgate.toml",
        "config/reference/clearing_members.csv",
        "config/reference/occ_holidays.csv",
        "config/prometheus/alerts.yml",
        "config/prometheus/alerts.test.yml",
        "config/grafana/posgate.json",
        "config/samples/pmc/positions.csv",
        "config/samples/pmc/theo/2026-11-20/meta.csv",
        "systemd/posgate.service",
        "systemd/posgate-worker@.service",
        "systemd/posgate-prune.timer",
        "systemd/posgate.tmpfiles",
    ):
        assert wanted in names
    assert not [n for n in names if "demo-keys" in n or n.startswith("config/accounts")]
    # every pattern selects something (a renamed folder would silently drop files)
    for pattern in SHIPPED:
        assert list(REPO.glob(pattern)), pattern


def test_init_lays_out_the_tree_and_check_config_passes_outside_the_checkout(
    tmp_path: Path,
) -> None:
    target = tmp_path / "site"
    result = posgate("init", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in shipped_files(REPO):
        assert (target / name).read_bytes() == (REPO / name).read_bytes(), name
        assert f"wrote  {target / name}" in result.stdout
    assert (target / "config" / "accounts").is_dir()
    assert list((target / "config" / "accounts").iterdir()) == []
    assert not (target / "config" / "demo-keys").exists()

    # the same tree as a checkout: the default --config works from DIR
    check = posgate("check-config", cwd=target)
    assert check.returncode == 0, check.stderr
    assert f"spool: {target / 'spool'}" in check.stdout
    assert "accounts: 0" in check.stdout
    # and from anywhere with --config
    check = posgate(
        "--config", str(target / "config" / "posgate.toml"), "check-config", cwd=tmp_path
    )
    assert check.returncode == 0, check.stderr


def test_init_keeps_what_exists_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "site"
    assert posgate("init", str(target), cwd=tmp_path).returncode == 0
    config = target / "config" / "posgate.toml"
    config.write_text(config.read_text() + "# edited\n")
    alerts = target / "config" / "prometheus" / "alerts.yml"
    alerts.unlink()

    again = posgate("init", str(target), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert config.read_text().endswith("# edited\n")
    assert f"kept   {config}" in again.stdout
    assert f"wrote  {alerts}" in again.stdout
    assert alerts.read_bytes() == (REPO / "config/prometheus/alerts.yml").read_bytes()

    forced = posgate("init", str(target), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert config.read_bytes() == (REPO / "config/posgate.toml").read_bytes()


def test_init_with_a_spool_path(tmp_path: Path) -> None:
    spool = tmp_path / 'odd "spool" dir'
    target = tmp_path / "etc"
    assert posgate("init", str(target), "--spool", str(spool), cwd=tmp_path).returncode == 0
    text = (target / "config" / "posgate.toml").read_text()
    assert tomllib.loads(text)["spool"]["root"] == str(spool)
    shipped = (REPO / "config" / "posgate.toml").read_text().splitlines()
    changed = [a for a, b in zip(text.splitlines(), shipped, strict=True) if a != b]
    assert len(changed) == 1 and changed[0].startswith("root = ")  # comments and all else kept
    check = posgate("check-config", cwd=target)
    assert check.returncode == 0, check.stderr
    assert f"spool: {spool}" in check.stdout


@pytest.mark.parametrize("where", ["missing/parent/site", "a-file"])
def test_init_refuses_a_target_it_cannot_make(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("x")
    result = posgate("init", str(tmp_path / where), cwd=tmp_path)
    assert result.returncode == 73
    assert "posgate init:" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_check_config_without_a_config_points_to_init(tmp_path: Path) -> None:
    result = posgate("check-config", cwd=tmp_path)
    assert result.returncode == 78
    assert "posgate init DIR" in result.stderr


def test_set_spool_root_touches_only_the_spool_section() -> None:
    text = '[other]\nroot = "x"\n\n[spool]\nroot = "../spool"   # a comment\n'
    out = set_spool_root(text, "/var/lib/posgate/spool")
    assert out == '[other]\nroot = "x"\n\n[spool]\nroot = "/var/lib/posgate/spool"   # a comment\n'
    with pytest.raises(ValueError):
        set_spool_root("[spool]\n", "/x")
