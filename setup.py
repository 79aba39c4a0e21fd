"""Build hook: the wheel carries the default config and ops files as package data.

The files live once, in ``config/`` and ``systemd/`` of the repository. ``build_py`` copies the
ones ``gateway/shipped_files.py`` selects into ``gateway/shipped/`` of the build; an editable
install reads them from the checkout instead. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _shipped_files_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("_shipped", HERE / "gateway" / "shipped_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildPyWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads config/ and systemd/ of the checkout
        shipped = _shipped_files_module()
        target = Path(self.build_lib) / "gateway" / shipped.PACKAGE_FOLDER
        shipped.copy_shipped(HERE, target)


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
