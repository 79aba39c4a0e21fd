"""The hashed lock files cover every requirement the scripts install, with one version each.

``requirements-test.lock`` (scripts/test, CI) must pin the runtime dependencies, the ``[test]``
extra and the build backend's requirements; ``requirements.lock`` (scripts/install, the .deb) the
runtime ones and the build backend's, and nothing of the test tools. Every pin carries a sha256,
and a package pinned in both files has the same version in both. ``pip install --require-hashes``
then refuses any transitive dependency the files miss, so an install from them is complete or
fails; scripts/lock regenerates them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(name: str) -> dict[str, tuple[str, int]]:
    """package -> (version, number of hashes), for the pins that apply to this interpreter."""
    pins: dict[str, tuple[str, int]] = {}
    current: str | None = None
    env = default_environment()
    for line in (ROOT / name).read_text().splitlines():
        match = PIN.match(line)
        if match:
            package, version, marker = match.groups()
            if marker and not Requirement(f"x; {marker}").marker.evaluate(env):  # type: ignore[union-attr]
                current = None
                continue
            current = canonicalize_name(package)
            assert current not in pins, f"{name}: {package} pinned twice"
            pins[current] = (version, 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def requirements(*groups: str) -> list[Requirement]:
    found = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    for group in groups:
        if group == "runtime":
            found += [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
        else:
            extra = PYPROJECT["project"]["optional-dependencies"][group]
            found += [Requirement(r) for r in extra]
    return found


def assert_covers(lock: dict[str, tuple[str, int]], wanted: list[Requirement], name: str) -> None:
    for req in wanted:
        key = canonicalize_name(req.name)
        assert key in lock, f"{name} does not pin {req.name}: run scripts/lock"
        version, hashes = lock[key]
        assert req.specifier.contains(version, prereleases=True), (
            f"{name} pins {req.name}=={version}, outside {req.specifier}: run scripts/lock"
        )
        assert hashes >= 1, f"{name}: {req.name} has no hash"


def test_the_test_lock_covers_runtime_test_and_build_requirements() -> None:
    lock = read_lock("requirements-test.lock")
    assert_covers(lock, requirements("runtime", "test"), "requirements-test.lock")
    assert all(hashes >= 1 for _, hashes in lock.values())


def test_the_runtime_lock_covers_runtime_and_build_requirements_only() -> None:
    lock = read_lock("requirements.lock")
    assert_covers(lock, requirements("runtime"), "requirements.lock")
    assert all(hashes >= 1 for _, hashes in lock.values())
    test_only = {canonicalize_name(r.name) for r in requirements("test")} - {
        canonicalize_name(r.name) for r in requirements("runtime")
    }
    assert test_only and not test_only & set(lock), "test tools in the runtime lock"


def test_a_package_has_the_same_version_in_both_locks() -> None:
    runtime, test = read_lock("requirements.lock"), read_lock("requirements-test.lock")
    assert set(runtime) <= set(test)
    assert {k: v for k, (v, _) in runtime.items()} == {k: test[k][0] for k in runtime}


def test_the_scripts_install_from_the_locks() -> None:
    env = (ROOT / "scripts" / "_env.sh").read_text()
    assert "--require-hashes -r requirements-test.lock" in env
    assert "--no-deps --no-build-isolation -e ." in env
    install = (ROOT / "scripts" / "install").read_text()
    assert '--require-hashes -r "$ROOT/requirements.lock"' in install
    assert "--no-deps --no-build-isolation" in install
