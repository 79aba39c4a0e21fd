"""The contrary-intention file to ``sftp://`` exchanges through the DPL file's delivery, with the
embedded SFTP server as the exchange (a firm-kind account whose ``inbound/dpl/`` plays the drop
folder, as in the DPL push tests): same bytes as the spool copy, sidecar last, temporaries of a
killed push removed, never twice the same content, again when the content changes, a dead
exchange late and retried while the others are served, and nothing redone after a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from engine.ebe.instructions import read_instruction_csv
from gateway.config import load_config
from gateway.ebe_store import ExpiringStore
from gateway.ledger import Ledger
from gateway.pipelines.ebe import EbeFlow
from gateway.publication.push import push_public_key
from tests.support.cir import valid_reports
from tests.support.daemon import TestConfig, free_port, make_test_config
from tests.support.firm import RemoteExchange, remote_exchange

DATA = Path(__file__).resolve().parents[1] / "data" / "ebe"
CT = dt.timezone(dt.timedelta(hours=-6))
NAME = "CIR_20261218.fixml"
HEADER = "account,symbol,put_call,strike,expiration_date,action,quantity\n"


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@dataclass
class Setup:
    cfg: TestConfig
    remote: RemoteExchange
    ledger: Ledger
    clock: Clock
    events: list[tuple[str, dict[str, object]]]

    def flow(self) -> EbeFlow:
        config = load_config(self.cfg.path)
        store = ExpiringStore(self.cfg.spool / "internal" / "ebe")
        flow = EbeFlow(
            spool_root=self.cfg.spool,
            ledger=self.ledger,
            store=store,
            config=lambda: config,
            clock=self.clock,
            emit=lambda key, body: self.events.append((key, dict(body))),
        )
        store.on_loaded = flow.set_loaded
        store.refresh()
        return flow


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    cfg = make_test_config(tmp_path / "local")
    shutil.copytree(DATA / "sets" / "base", cfg.spool / "internal" / "ebe" / "2026-12-18")
    with remote_exchange(tmp_path) as remote:
        ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
        try:
            yield Setup(cfg, remote, ledger, Clock(dt.datetime(2026, 12, 18, 15, 0, tzinfo=CT)), [])
        finally:
            ledger.close()


def late(exchange: str) -> float | None:
    return REGISTRY.get_sample_value("posgate_ebe_publication_late", {"exchange": exchange})


def test_the_contrary_file_is_pushed_to_sftp_exchanges_like_the_dpl_file(setup: Setup) -> None:
    cfg = setup.cfg
    url, drop = setup.remote.url, setup.remote.drop
    (cfg.root / "config" / "reference" / "exchanges.csv").write_text(
        "exchange_id,name,receives_dpl,delivery,receives_ebe\n"
        "XCBO,Cboe Options Exchange,Y,spool,Y\n"
        f"XREM,Remote Exchange,N,{url},Y\n"
        f"XDED,Dead Exchange,N,sftp://xdrop@127.0.0.1:{free_port()}/in,Y\n"
        f"XOFF,Not Receiving,Y,{url},N\n"
    )
    setup.remote.keys.append(push_public_key(load_config(cfg.path))[1])
    flow = setup.flow()
    lines = read_instruction_csv(
        (HEADER + "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n").encode(), "i.csv"
    )
    receipt = flow.submit(
        lines,
        firm="00123",
        received_at=dt.datetime(2026, 12, 18, 16, 0, tzinfo=CT),
        origin="i.csv",
    )
    assert receipt["accepted"] == 1
    assert flow.publish_due() == []  # before the cutoff nothing goes out
    assert not list(drop.iterdir())

    # A temporary left by a push killed halfway is removed by the next push.
    (drop / f"{NAME}.0123abcd.part").write_bytes(b"half")
    setup.clock.at = dt.datetime(2026, 12, 18, 16, 30, 1, tzinfo=CT)
    assert sorted(flow.publish_due()) == ["XCBO", "XREM"]
    local = cfg.spool / "exchanges" / "XCBO" / "outbound" / "ebe" / NAME
    pushed = (drop / NAME).read_bytes()
    assert pushed == local.read_bytes()
    [report] = valid_reports(pushed)
    assert report.get("TxnTm") == "2026-12-18T22:00:00Z"
    sha = hashlib.sha256(pushed).hexdigest()
    assert (drop / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert sorted(p.name for p in drop.iterdir()) == [NAME, f"{NAME}.sha256"]
    row = setup.ledger.ebe_publication("2026-12-18", "XREM")
    assert row is not None and row["sha256"] == sha and row["path"] == url
    published = [b for k, b in setup.events if k == "exchange.XREM.ebe.published"]
    assert published[0]["target"] == url and published[0]["records"] == 1
    assert (late("XCBO"), late("XREM"), late("XDED")) == (0.0, 0.0, 1.0)
    assert late("XOFF") is None

    # Idempotent: nothing is written again; the dead exchange waits for its retry delay.
    inode = (drop / NAME).stat().st_ino
    assert flow.publish_due() == []
    assert (drop / NAME).stat().st_ino == inode
    assert late("XDED") == 1.0

    # A newer set after the cutoff changes the decisions: delivered again, new sidecar.
    folder = cfg.spool / "internal" / "ebe" / "2026-12-18"
    positions = (folder / "expiring_positions.csv").read_text()
    (folder / "expiring_positions.csv").write_text(
        positions.replace(",45.66,2026-12-18,100,10,", ",45.66,2026-12-18,100,12,")
    )
    time.sleep(0.01)
    (folder / "meta.csv").touch()
    assert flow.store.refresh() == ["2026-12-18"]
    assert sorted(flow.publish_due()) == ["XCBO", "XREM"]
    again = (drop / NAME).read_bytes()
    assert again != pushed and again == local.read_bytes()
    [report] = valid_reports(again)
    assert {q.get("ExpTyp"): q.get("ExpQty") for q in report.iter("{*}Qty")} == {"4": "4", "3": "8"}
    assert (drop / f"{NAME}.sha256").read_text().split()[0] == hashlib.sha256(again).hexdigest()

    # After a restart (a new flow over the same ledger) nothing delivered is redone, and the
    # dead exchange is tried at once (and fails again, still late).
    assert setup.flow().publish_due() == []
    assert (drop / NAME).read_bytes() == again
    assert late("XDED") == 1.0
