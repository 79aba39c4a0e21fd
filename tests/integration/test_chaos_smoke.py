"""``scripts/chaos kill`` at a tiny size: the harness runs and finds nothing lost."""

from __future__ import annotations

import json

import pytest

from tests.reliability.kill import run


def test_chaos_kill_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(iterations=2, files=2, records=40, max_delay_s=0.5, seed=3) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["files"] == 4 and figures["records sent"] == 160
    assert figures["records stored"] == 160 and figures["receipts"] == 4
    assert figures["lost files"] == figures["records duplicated"] == 0
