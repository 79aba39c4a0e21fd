"""``posgate serve`` with ``[web] enabled``: the calculator answers from the daemon's own P&L
sets, a set dropped into the spool later is served without a restart, and its request metrics
are on the daemon's /metrics."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.daemon import DaemonProcess, free_port, make_test_config

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "samples" / "pmc"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: bytes, kind: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"content-type": kind}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def test_serve_serves_the_calculator(tmp_path: Path) -> None:
    port = free_port()
    cfg = make_test_config(tmp_path, web={"enabled": True, "port": port})
    proc = DaemonProcess(cfg)
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready()
        status, body = _get(base + "/healthz")
        assert status == 503 and json.loads(body)["error"]["reason"] == "NO_THEO_SET"

        # a set published into the spool is picked up (meta.csv last, as the producer does)
        day = cfg.spool / "internal" / "theo" / "2026-11-20"
        day.mkdir(parents=True, exist_ok=True)
        for f in sorted(
            (SAMPLE / "theo" / "2026-11-20").iterdir(), key=lambda f: f.name == "meta.csv"
        ):
            shutil.copy(f, day / f.name)
        deadline = time.monotonic() + 60
        while _get(base + "/healthz")[0] != 200:
            assert time.monotonic() < deadline, "the new set was not served"
            time.sleep(0.5)

        status, body = _post(
            base + "/api/v1/margin", (SAMPLE / "positions.csv").read_bytes(), "text/csv"
        )
        assert status == 200
        doc = json.loads(body)
        assert doc["theo_date"] == "2026-11-20" and doc["counts"]["accepted"] == 15
        page = _get(base + "/")
        assert page[0] == 200 and b"Portfolio Margin Calculator" in page[1]
        _, exposed = _get(proc.metrics_url)
        assert b'posgate_http_requests_total{route="/api/v1/margin",status="200"} 1.0' in exposed
    finally:
        assert proc.stop() == 0
