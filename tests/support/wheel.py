"""Building posgate's wheel from a copy of the checkout, as a user or a packager would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_TOP_LEFT_OUT = {".git", ".venv", "spool", "tests", "build", "dist", "bench-out"}
_LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.egg-info", "demo-keys", ".*_cache")


def _ignore(folder: str, names: list[str]) -> set[str]:
    left_out = set(_LEFT_OUT(folder, names))
    here = Path(folder)
    if here == REPO:
        left_out |= _TOP_LEFT_OUT & set(names)
    if here == REPO / "gateway":
        left_out |= {"shipped", "COMMIT"} & set(names)
    return left_out


def source_copy(target: Path) -> Path:
    """The checkout without its venv, spool, tests and generated files (what a clone holds)."""
    shutil.copytree(REPO, target, ignore=_ignore)
    return target


def build_wheel(out: Path, scratch: Path) -> Path:
    """Build the wheel (no dependencies, no build isolation: the build tools are in the lock)."""
    source = source_copy(scratch / "src")
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("posgate-*.whl")
    return wheel
