from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, TestConfig, make_test_config, running


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TZ", "UTC")


@pytest.fixture
def test_config(tmp_path: Path) -> TestConfig:
    return make_test_config(tmp_path)


@pytest.fixture
def daemon(test_config: TestConfig) -> Iterator[DaemonProcess]:
    with running(test_config, clean_exit=False) as proc:
        yield proc
