"""Parsing of the ``sftp://`` delivery targets an exchange's publication is pushed to."""

from __future__ import annotations

import pytest

from gateway.publication.push import SftpTarget


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sftp://xcbo@host.example:2022/in/dpl", ("xcbo", "host.example", 2022, "/in/dpl")),
        ("sftp://u@10.0.0.1", ("u", "10.0.0.1", 22, "")),
        ("sftp://u%40x@h:22/a%20b", ("u@x", "h", 22, "/a b")),
    ],
)
def test_sftp_targets_parse(url: str, expected: tuple[str, str, int, str]) -> None:
    target = SftpTarget.parse(url)
    assert (target.user, target.host, target.port, target.folder) == expected
    assert target.path("F") == (f"{expected[3]}/F" if expected[3] else "F")
