"""The wheel carries the default config and ops files: ``posgate init`` and ``check-config`` work
from a throwaway virtualenv, outside any checkout."""

from __future__ import annotations

import os
import subprocess
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from gateway.shipped_files import PACKAGE_FOLDER, shipped_files
from tests.support.wheel import REPO, build_wheel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its dependencies come from the test interpreter's
    site-packages through a .pth file (they are the locked versions; nothing is downloaded)."""
    scratch = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(scratch / "dist", scratch)
    env_dir = scratch / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "posgate-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return env_dir


def run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSGATE_CONFIG", "PYTHONPATH")}
    return subprocess.run(
        [str(env_dir / "bin" / "posgate"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_the_wheel_holds_the_shipped_files_and_no_secret(installed: Path) -> None:
    (wheel,) = installed.parent.glob("dist/posgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in shipped_files(REPO):
        assert f"gateway/{PACKAGE_FOLDER}/{name}" in names, name
    assert not [n for n in names if "demo-keys" in n or "/accounts/" in n or "ed25519" in n]
    assert not [n for n in names if n.startswith(("tests/", "config/", "systemd/"))]


def test_init_and_check_config_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(installed)), where  # the wheel's copy, not the checkout

    target = tmp_path / "site"
    result = run(installed, "init", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in shipped_files(REPO):
        assert (target / name).read_bytes() == (REPO / name).read_bytes(), name

    check = run(installed, "check-config", cwd=target)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"spool: {target / 'spool'}" in check.stdout
    version = run(installed, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("posgate ")


def test_check_config_in_an_empty_folder_points_to_init(installed: Path, tmp_path: Path) -> None:
    check = run(installed, "check-config", cwd=tmp_path)
    assert check.returncode == 78
    assert "posgate init DIR" in check.stderr
