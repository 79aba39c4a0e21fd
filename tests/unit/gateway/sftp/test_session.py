"""The protocol adapter's own pieces, without a network: the level-checked asyncssh logger."""

from __future__ import annotations

import logging

import pytest
from asyncssh.logging import logger as asyncssh_logger

from gateway.sftp.session import LevelCheckedLogger


class Loud:
    """A log argument that fails the test if anything formats it."""

    def __str__(self) -> str:
        raise AssertionError("formatted although nothing logs at DEBUG")


def test_debug_lines_are_formatted_only_when_asyncssh_logs_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checked = LevelCheckedLogger(asyncssh_logger.get_child("sftp", context="chan=0"))
    with caplog.at_level(logging.INFO, logger="asyncssh"):
        checked.debug1("Received open request for %s", Loud())
        checked.debug2("Sending %s", Loud())
        checked.info("SFTP server exited")  # everything else is the wrapped logger's
    assert [r.getMessage() for r in caplog.records] == ["[chan=0] SFTP server exited"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="asyncssh"):
        checked.debug1("Received open request for %s", b"/inbound/dpl/a.fixml")
    assert [r.getMessage() for r in caplog.records] == [
        "[chan=0] Received open request for /inbound/dpl/a.fixml"
    ]
