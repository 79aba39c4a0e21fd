"""``scripts/build-deb``: the package is built, its contents and control data are what an admin
relies on, and it installs, upgrades and purges for real with dpkg in a throwaway root.

The throwaway root uses dpkg's own mechanism for that (``--root DIR --force-script-chrootless``:
the maintainer scripts run on this system with ``$DPKG_ROOT=DIR``), so the postinst really builds
the virtualenv with /usr/bin/python3 from the packaged wheels, offline and hash-checked; it
creates no account and runs no systemctl there.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from gateway.shipped_files import set_spool_root

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UNITS = (
    "posgate.service",
    "posgate-worker@.service",
    "posgate-prune.service",
    "posgate-prune.timer",
)


def require(tool: str) -> None:
    if shutil.which(tool):
        return
    reason = f"{tool} is not installed (Debian package dpkg)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " -- required when CI=true")
    pytest.skip(reason)


def run(args: list[str], timeout: int = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("dpkg-deb")
    require("dpkg")
    out = tmp_path_factory.mktemp("deb")
    result = run([str(REPO / "scripts" / "build-deb"), "--out", str(out), "--compression", "gzip"])
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("posgate_*.deb")
    assert result.stdout.strip().endswith(path.name)
    return path


def contents(deb: Path) -> dict[str, str]:
    """path -> mode string, from ``dpkg-deb -c``."""
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    found = {}
    for line in listing.splitlines():
        fields = line.split()
        found[fields[5].removeprefix(".")] = fields[0] + " " + fields[1]
    return found


def test_the_package_holds_what_the_units_and_the_admin_need(deb: Path) -> None:
    files = contents(deb)
    for unit in UNITS:
        assert files[f"/lib/systemd/system/{unit}"].startswith("-rw-r--r-- root/root")
    for path in (
        "/etc/posgate/posgate.toml",
        "/etc/posgate/prune.env",
        "/etc/posgate/reference/clearing_members.csv",
        "/usr/lib/tmpfiles.d/posgate.conf",
        "/usr/lib/sysusers.d/posgate.conf",
        "/usr/share/posgate/prometheus/alerts.yml",
        "/usr/share/posgate/grafana/posgate.json",
        "/opt/posgate/doc/README.md",
        "/opt/posgate/requirements.lock",
    ):
        assert path in files, path
    for script in ("/opt/posgate/lib/setup-venv", "/opt/posgate/bin/posgate-prune-spool"):
        assert files[script].startswith("-rwxr-xr-x root/root"), script
    assert not [p for p in files if "demo" in p or "/accounts/" in p or "ed25519" in p]

    # a wheel for posgate and for every package the runtime lock pins for this platform
    wheels = {p.rsplit("/", 1)[1].split("-")[0].lower() for p in files if p.endswith(".whl")}
    lock = (REPO / "requirements.lock").read_text()
    pinned = {
        m.group(1).lower().replace("-", "_").replace(".", "_")
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==\S+(?: ;\s*(.*?))?\s*\\$", lock, re.M)
        if not m.group(2) or "win32" not in m.group(2)
    }
    assert "posgate" in wheels
    assert pinned <= {w.replace("-", "_").replace(".", "_") for w in wheels}

    # every shipped /etc file is a conffile, so dpkg keeps an admin's edits on upgrade
    conffiles = run(["dpkg-deb", "-I", str(deb), "conffiles"]).stdout.split()
    assert sorted(conffiles) == sorted(p for p in files if p.startswith("/etc/") and "." in p)


def test_the_control_data_names_the_python_the_wheels_are_for(deb: Path) -> None:
    def field(name: str) -> str:
        return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert field("Package") == "posgate" and field("Version") == version
    assert field("Architecture") == run(["dpkg", "--print-architecture"]).stdout.strip()
    python = run(["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:2])"]).stdout
    major, minor = python.split()
    depends = field("Depends")
    assert f"python3 (>= {major}.{minor})" in depends
    assert f"python3 (<< {major}.{int(minor) + 1})" in depends
    assert "python3-venv" in depends


def test_install_upgrade_and_purge_in_a_throwaway_root(deb: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    admin = root / "var" / "lib" / "dpkg"
    for folder in ("info", "updates", "triggers"):
        (admin / folder).mkdir(parents=True)
    for name in ("status", "available"):
        (admin / name).touch()
    dpkg = ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends"]
    dpkg += ["--log=/dev/null"]

    installed = run([*dpkg, "--install", str(deb)])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "holds RabbitMQ's default password 'guest'" in installed.stderr

    posgate = root / "opt" / "posgate" / "venv" / "bin" / "posgate"
    assert os.access(posgate, os.X_OK)
    # the venv is the system Python's
    python = os.path.realpath(root / "opt" / "posgate" / "venv" / "bin" / "python")
    assert python.startswith("/usr/bin/python3")
    config = root / "etc" / "posgate" / "posgate.toml"
    assert config.read_text() == set_spool_root(
        (REPO / "config" / "posgate.toml").read_text(), "/var/lib/posgate/spool"
    )
    check = run([str(posgate), "--config", str(config), "check-config"], cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "spool: /var/lib/posgate/spool" in check.stdout
    version = run([str(posgate), "--version"], cwd=tmp_path)
    assert re.fullmatch(r"posgate \S+ \(commit (?:[0-9a-f]{12}|unknown)\)\n", version.stdout)
    init = run([str(posgate), "init", str(tmp_path / "site")], cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "site" / "systemd" / "posgate.service").is_file()

    def mode(path: str) -> int:
        return stat.S_IMODE((root / path.lstrip("/")).stat().st_mode)

    assert mode("/etc/posgate") == 0o750 and mode("/etc/posgate/posgate.toml") == 0o640
    assert mode("/etc/posgate/credentials") == 0o700
    assert mode("/etc/posgate/credentials/amqp_password") == 0o600
    assert mode("/var/lib/posgate/spool") == 0o750

    # an upgrade (the same package again) keeps the admin's config and credential
    config.write_text(config.read_text() + "# edited by the admin\n")
    credential = root / "etc" / "posgate" / "credentials" / "amqp_password"
    credential.write_text("the-real-password\n")
    again = run([*dpkg, "--install", str(deb)])
    assert again.returncode == 0, again.stdout + again.stderr
    assert config.read_text().endswith("# edited by the admin\n")
    assert credential.read_text() == "the-real-password\n"
    assert os.access(posgate, os.X_OK)

    purged = run([*dpkg, "--purge", "posgate"])
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not (root / "opt" / "posgate").exists()
    assert not (root / "lib" / "systemd" / "system" / "posgate.service").exists()
    assert not config.exists() and not credential.exists()
    assert (root / "var" / "lib" / "posgate" / "spool").is_dir()  # the data stays
