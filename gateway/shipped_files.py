"""The default config and ops files that ship with posgate, and laying them out (``posgate init``).

One source of truth: the files live in the repository's ``config/`` and ``systemd/``. Building the
wheel copies the ones ``SHIPPED`` selects into the package as ``gateway/shipped/config/...`` and
``gateway/shipped/systemd/...`` (the build hook in ``setup.py`` runs ``copy_shipped``); an
editable install or a checkout reads them in place. ``shipped_root()`` finds whichever is there,
so ``posgate init`` gives the same tree either way.

This module uses the standard library only: ``setup.py`` loads it by path at build time.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

PACKAGE_FOLDER = "shipped"
SHIPPED = (
    "config/posgate.toml",
    "config/reference/*.csv",
    "config/prometheus/*.yml",
    "config/grafana/*.json",
    "config/samples/**/*.csv",
    "config/samples/**/*.txt",
    "systemd/*.service",
    "systemd/*.timer",
    "systemd/posgate.tmpfiles",
    "systemd/posgate.sysusers",
    "systemd/posgate-prune.env",
)
"""Glob patterns, relative to the repository, of the files a wheel carries. Never the demo
account or its keys (``config/accounts/``, ``config/demo-keys/``)."""

EMPTY_FOLDERS = ("config/accounts",)
"""Folders ``init`` creates empty: one TOML file per account goes there (``posgate firm add``)."""

CONFIG = "config/posgate.toml"


def shipped_files(root: Path) -> list[str]:
    """The shipped files under ``root`` (a checkout or the packaged copy), relative, sorted."""
    found: set[str] = set()
    for pattern in SHIPPED:
        for path in root.glob(pattern):
            if path.is_file():
                found.add(path.relative_to(root).as_posix())
    return sorted(found)


def copy_shipped(source: Path, target: Path) -> list[str]:
    """Copy the shipped files of the checkout ``source`` to ``target`` (the build hook)."""
    names = shipped_files(source)
    if CONFIG not in names:
        raise FileNotFoundError(f"{source / CONFIG}: not a posgate checkout")
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
    return names


def shipped_root() -> Path:
    """Where the shipped files are: inside the installed package, else the checkout."""
    here = Path(__file__).resolve().parent
    for root in (here / PACKAGE_FOLDER, here.parent):
        if (root / CONFIG).is_file():
            return root
    raise FileNotFoundError(
        f"the default configuration is missing from {here / PACKAGE_FOLDER}: reinstall posgate"
    )


@dataclass(frozen=True)
class LaidOut:
    """What ``lay_out`` did with a path: ``wrote``, ``kept`` (it existed) or ``made`` (a folder)."""

    action: str
    path: Path


_SPOOL_ROOT = re.compile(r'^(root\s*=\s*)"[^"]*"(.*)$')


def set_spool_root(config_text: str, spool: str) -> str:
    """``config_text`` with ``[spool] root`` set to ``spool``; every other line unchanged."""
    out: list[str] = []
    section = ""
    replaced = False
    for line in config_text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.split("]")[0].strip("[ ")
        match = _SPOOL_ROOT.match(line.rstrip("\n"))
        if section == "spool" and match and not replaced:
            quoted = spool.replace("\\", "\\\\").replace('"', '\\"')
            line = f'{match.group(1)}"{quoted}"{match.group(2)}\n'
            replaced = True
        out.append(line)
    if not replaced:
        raise ValueError("the shipped config has no [spool] root line")
    return "".join(out)


def lay_out(target: Path, *, spool: str | None = None, force: bool = False) -> list[LaidOut]:
    """Copy every shipped file to ``target`` (``target/config/posgate.toml``, ``target/systemd/``,
    ...), keeping files that exist unless ``force``; ``spool`` replaces the config's spool root.

    ``target`` itself is created when missing, never its parents (a typo stays a typo).
    Raises ``FileNotFoundError`` when the parent of ``target`` does not exist and ``OSError`` for
    a file that cannot be written.
    """
    root = shipped_root()
    if not target.exists():
        if not target.parent.is_dir():
            raise FileNotFoundError(f"{target.parent}: no such folder")
        target.mkdir()
    elif not target.is_dir():
        raise NotADirectoryError(f"{target}: not a folder")
    done: list[LaidOut] = []
    for name in shipped_files(root):
        dest = target / name
        if dest.exists() and not force:
            done.append(LaidOut("kept", dest))
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = (root / name).read_bytes()
        if name == CONFIG and spool is not None:
            data = set_spool_root(data.decode("utf-8"), spool).encode("utf-8")
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(dest)
        done.append(LaidOut("wrote", dest))
    for folder in EMPTY_FOLDERS:
        path = target / folder
        if not path.is_dir():
            path.mkdir(parents=True)
            done.append(LaidOut("made", path))
    return done
