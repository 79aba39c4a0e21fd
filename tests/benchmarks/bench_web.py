"""The calculator over HTTP on loopback: margin requests per second, latency, and first paint.

    python -m tests.benchmarks.bench_web [--seconds S (default 5)] [--connections K (default 8)]
        [--positions N (default 20)] [--no-paint] [--json]

One ``posgate web`` process (rate limit off) serves the sample P&L set. The client keeps K
keep-alive connections busy, each sending the same ``POST /api/v1/margin`` with N JSON positions
(options, futures and stocks of the set, non-zero quantities) and timing each request from the
first byte sent to the last byte read. The client is a small asyncio loop over raw sockets so
that it costs less CPU than the server it measures (both share the machine's cores). The page's
first paint is read from the browser's paint timing in Debian's chromium. Targets:
at least 300 requests/s with p99 under 50 ms on one process; first paint under 1 s. Because the
machine may be shared, the server's and the client's CPU time per request are printed too (from
``/proc/<pid>/stat`` and ``time.process_time``), with the load average: ``req per server CPU s``
is what one process could serve on a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

from tests.benchmarks.bench_sftp import cpu_s
from tests.support.web import WebProcess

TARGET_RPS = 300.0
TARGET_P99_MS = 50.0
TARGET_PAINT_MS = 1000.0


def portfolio(base: str, n: int) -> bytes:
    """N positions over the set's contracts for account type C (quantities cycle through ±)."""
    rows = []
    for symbol in ("SPX", "SPY", "SP"):
        url = f"{base}/api/v1/contracts?account_type=C&symbol={symbol}"
        with urllib.request.urlopen(url, timeout=5) as r:
            rows.extend(json.load(r)["contracts"])
    positions = []
    for i in range(n):
        c = rows[i % len(rows)]
        positions.append(
            {
                "firm": "5",
                "account": f"A{i % 3}",
                "account_type": "C",
                "symbol": c["symbol"],
                "security_type": c["security_type"],
                "put_call": c["put_call"],
                "series_date": c["series_date"],
                "strike": c["strike"],
                "quantity": (i % 7 + 1) * (-1 if i % 3 == 0 else 1),
            }
        )
    return json.dumps({"positions": positions}).encode()


async def _connection(
    host: str, port: int, request: bytes, until: float, latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()


def load(port: int, body: bytes, seconds: float, connections: int) -> tuple[float, list[float]]:
    request = (
        b"POST /api/v1/margin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    latencies: list[float] = []

    async def run() -> float:
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(
            *(_connection("127.0.0.1", port, request, until, latencies) for _ in range(connections))
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    return elapsed, latencies


def first_paint_ms(url: str) -> float | None:
    """The page's first contentful paint on a cold browser tab, in ms (None without chromium)."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return None
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    args += ["--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            best = None
            for _ in range(3):
                page = browser.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_function(
                    "performance.getEntriesByName('first-contentful-paint').length > 0"
                )
                fcp = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"
                )
                best = fcp if best is None else max(best, fcp)  # the worst of three cold tabs
                page.close()
            return float(best) if best is not None else None
        finally:
            browser.close()


def engine_cpu_ms(body: bytes, rounds: int = 5, calls: int = 200) -> tuple[float, float]:
    """CPU ms of one ``POST /api/v1/margin`` body's work (JSON rows -> margin JSON) in this
    process, with the small-portfolio path and with the vectorised engine, interleaved; the best
    round of each (the machine may be shared)."""
    from gateway.web import bodies
    from gateway.web.positions import parsed_file
    from gateway.web.sets import TheoSets

    theo = TheoSets(Path("config/samples/pmc/theo").resolve()).get(None)
    assert theo is not None
    limit = bodies.SMALL_LIMIT

    def once() -> bytes:
        rows = bodies.json_rows(body, 100_000)
        return bodies.margin_json(parsed_file(rows), theo)

    best = {"small": float("inf"), "vectorised": float("inf")}
    try:
        for _ in range(rounds):
            for name, small_limit in (("small", limit), ("vectorised", -1)):
                bodies.SMALL_LIMIT = small_limit
                once()
                t0 = time.process_time()
                for _ in range(calls):
                    once()
                best[name] = min(best[name], (time.process_time() - t0) * 1000 / calls)
    finally:
        bodies.SMALL_LIMIT = limit
    return best["small"], best["vectorised"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--no-paint", action="store_true", help="skip the browser measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args(argv)

    web = WebProcess(Path("config/samples/pmc/theo").resolve(), "--rate", "0")
    try:
        web.wait_ready()
        body = portfolio(web.url, args.positions)
        load(web.port, body, min(1.0, args.seconds), 2)  # warm-up
        server_cpu = cpu_s(web.proc.pid, children=False)
        client_cpu = time.process_time()
        elapsed, lat = load(web.port, body, args.seconds, args.connections)
        server_cpu = cpu_s(web.proc.pid, children=False) - server_cpu
        client_cpu = time.process_time() - client_cpu
        load_average = os.getloadavg()[0]
        paint = None if args.no_paint else first_paint_ms(web.url + "/")
    finally:
        web.stop()
    small_ms, vector_ms = engine_cpu_ms(body)
    lat.sort()
    rps = len(lat) / elapsed
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    result = {
        "positions": args.positions,
        "connections": args.connections,
        "requests": len(lat),
        "requests_per_s": round(rps, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "first_paint_ms": None if paint is None else round(paint, 1),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / max(len(lat), 1), 3),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / max(len(lat), 1), 3),
        "requests_per_cpu_s": round(len(lat) / server_cpu, 1) if server_cpu else None,
        "load_average": round(load_average, 2),
        "work_cpu_ms_small_path": round(small_ms, 3),
        "work_cpu_ms_vectorised": round(vector_ms, 3),
        "meets_target": rps >= TARGET_RPS
        and p99 < TARGET_P99_MS
        and (paint is None or paint < TARGET_PAINT_MS),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"## web: POST /api/v1/margin, {args.positions} positions, one process\n")
        print(
            "| requests | connections | req/s | p50 ms | p99 ms | server CPU ms/req "
            "| req per server CPU s | client CPU ms/req | first paint ms | load average |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        paint_text = "-" if paint is None else f"{paint:.0f}"
        print(
            f"| {len(lat):,} | {args.connections} | {rps:,.0f} | {p50:.1f} | {p99:.1f} "
            f"| {result['server_cpu_ms_per_request']} | {result['requests_per_cpu_s']} "
            f"| {result['client_cpu_ms_per_request']} | {paint_text} | {load_average:.1f} |"
        )
        print(
            f"\nthe request's work in-process (JSON rows -> margin JSON), CPU ms: small path "
            f"{small_ms:.3f}, vectorised engine {vector_ms:.3f} ({vector_ms / small_ms:.2f}x)"
        )
        print(
            f"\ntarget: >= {TARGET_RPS:.0f} req/s, p99 < {TARGET_P99_MS:.0f} ms, first paint < "
            f"{TARGET_PAINT_MS:.0f} ms: {'met' if result['meets_target'] else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
