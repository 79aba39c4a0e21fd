from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.gateway.sftp.views import make_spool


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return make_spool(tmp_path)
