"""Candidates of the intake: their receipt instant is the daemon's clock, never their mtime."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from gateway.spool.watch import StableFiles

T0 = dt.datetime(2026, 11, 21, 5, 59, 59, tzinfo=dt.UTC)  # 23:59:59 CT
LATER = T0 + dt.timedelta(minutes=2)


def test_first_sight_dates_a_file_and_later_sightings_or_changes_do_not(tmp_path: Path) -> None:
    path = tmp_path / "a.fixml"
    path.write_bytes(b"x")
    os.utime(path, (4_000_000_000, 4_000_000_000))
    files = StableFiles(stable_interval_s=0.0)
    files.observe(path, False, T0)
    path.write_bytes(b"xy")  # still being written, named again by the next event
    files.observe(path, False, LATER)
    assert files.ready() == [(path, T0)]


def test_the_writer_close_instant_wins_over_an_earlier_sighting(tmp_path: Path) -> None:
    path = tmp_path / "a.fixml"
    path.write_bytes(b"x")
    files = StableFiles(stable_interval_s=60.0)
    files.observe(path, False, T0)  # a watchdog event of a previous upload under this name
    files.observe(path, True, LATER)  # the embedded server: closed at LATER
    assert files.ready() == [(path, LATER)]


def test_a_file_that_could_not_be_claimed_keeps_its_instant_when_named_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.fixml"
    path.write_bytes(b"x")
    files = StableFiles(stable_interval_s=0.0)
    files.observe(path, False, T0)
    assert files.ready() == [(path, T0)]
    files.discard(path)
    files.remember(path, T0)  # the claim failed; the sweep names it again after midnight
    files.observe(path, False, LATER)
    assert files.ready() == [(path, T0)]
