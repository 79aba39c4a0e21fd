"""``posgate dpl publish`` and ``posgate dpl push-key`` in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.support.daemon import make_test_config


@pytest.fixture
def config_path(tmp_path: Path) -> str:
    return str(make_test_config(tmp_path).path)


def publish(config_path: str, *args: str) -> int:
    return main(["--config", config_path, "dpl", "publish", *args])


def test_publish_after_the_cutoff_then_again(
    config_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSGATE_CLOCK_START", "2026-03-10T00:05:00-05:00")
    assert publish(config_path, "--date", "2026-03-09") == 0
    out = capsys.readouterr().out
    assert "built DPL_20260309.fixml: 0 records, DlvDt 2026-03-10" in out
    assert "delivered to XCBO" in out and "delivered to XISE" in out and "XPHL" not in out
    assert publish(config_path, "--date", "2026-03-09") == 0
    assert "already published to every receiving exchange" in capsys.readouterr().out
    assert publish(config_path, "--date", "2026-03-09", "--force") == 0
    assert "delivered to XCBO" in capsys.readouterr().out


def test_publish_refuses_non_cycles_and_open_cycles(
    config_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSGATE_CLOCK_START", "2026-03-09T23:59:59-05:00")
    assert publish(config_path, "--date", "2026-03-08") == 65
    assert "not a business day (weekend)" in capsys.readouterr().err
    assert publish(config_path, "--date", "2026-03-09") == 65
    assert "still open until its cutoff 2026-03-10T00:00:00-05:00" in capsys.readouterr().err
    assert publish(config_path, "--date", "2026-03-09", "--force") == 0
    assert "(preliminary: the cycle is still open)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        publish(config_path, "--date", "2026-13-01")
    assert usage.value.code == 2


def test_publish_refuses_mistyped_and_future_dates_and_delivers_nothing(
    config_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSGATE_CLOCK_START", "2026-03-10T00:05:00-05:00")
    spool = Path(config_path).parent.parent / "spool"
    assert publish(config_path, "--date", "1999-01-04") == 65  # a Monday, 27 years back
    err = capsys.readouterr().err
    assert "cycle 1999-01-04 is outside the ledger's history (no DPL history)" in err
    assert "nothing delivered" in err
    assert publish(config_path, "--date", "2026-03-11") == 65
    assert "in the future (the current cycle is 2026-03-10)" in capsys.readouterr().err
    assert not list((spool / "exchanges").rglob("DPL_*"))
    # inside the window: published, and from then on the ledger's history reaches back to it
    assert publish(config_path, "--date", "2026-03-02") == 0
    monkeypatch.setenv("POSGATE_CLOCK_START", "2026-04-20T00:05:00-05:00")
    assert publish(config_path, "--date", "2026-03-03") == 0
    assert publish(config_path, "--date", "2026-02-27") == 65
    assert "the ledger's DPL history starts at 2026-03-02" in capsys.readouterr().err


def test_publish_with_a_broken_config_exits_78(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    cfg.path.write_text(cfg.path.read_text() + "\n[dpl]\npublish_time = 5\n")
    assert publish(str(cfg.path), "--date", "2026-03-09") == 78


def test_push_key_is_created_once_and_printed(
    config_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", config_path, "dpl", "push-key"]) == 0
    first = capsys.readouterr().out.strip()
    assert first.startswith("ssh-ed25519 ") and first.endswith(" posgate-push")
    assert main(["--config", config_path, "dpl", "push-key"]) == 0
    assert capsys.readouterr().out.strip() == first


def test_publish_writes_its_events_through_the_outbox_like_the_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With AMQP on, ``dpl publish`` queues ``exchange.<id>.dpl.published`` in the ledger's
    outbox, in the transaction of each delivery row: the daemon's publisher sends it."""
    import sqlite3

    cfg = make_test_config(tmp_path, amqp={"enabled": True})
    monkeypatch.setenv("POSGATE_CLOCK_START", "2026-03-10T00:05:00-05:00")
    assert publish(str(cfg.path), "--date", "2026-03-09") == 0
    with sqlite3.connect(cfg.spool / "state" / "ledger.sqlite3") as conn:
        rows = conn.execute(
            "SELECT routing_key, message_id FROM amqp_outbox ORDER BY id"
        ).fetchall()
        deliveries = conn.execute(
            "SELECT exchange FROM dpl_deliveries ORDER BY exchange"
        ).fetchall()
    assert sorted(key for key, _ in rows) == [
        "exchange.XCBO.dpl.published",
        "exchange.XISE.dpl.published",
    ]
    assert all(mid.startswith("dpl.published.2026-03-09.") for _, mid in rows)
    assert [e for (e,) in deliveries] == ["XCBO", "XISE"]
