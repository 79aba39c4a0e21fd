"""CLI verb ``posgate web``: the calculator page and HTTP API in the foreground.

The process is stateless, so any number of them can run behind a load balancer. P&L sets come
from ``--theo`` (one set folder, or a folder of ``<YYYY-MM-DD>/`` sets) or else from the spool's
``internal/theo/`` of the config; limits come from the config's ``[web]`` table when the config
file exists, and the flags override its host and port.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

EX_OK = 0
EX_NOINPUT = 66
EX_CONFIG = 78


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "web",
        help="serve the margin calculator page and HTTP API",
        description="Serve the portfolio margin calculator (one page and /api/v1, described by "
        "/openapi.json). Stateless: positions stay in the browser.",
    )
    p.add_argument("--theo", metavar="DIR", help="theo set folder or folder of dated sets")
    p.add_argument("--host", help="address to listen on (default: [web] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: [web] port, 8080)")
    p.add_argument(
        "--rate", type=float, metavar="N", help="requests per second per client (0: no limit)"
    )
    p.set_defaults(func=run_web)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"posgate: {message}\n")
    return code


def run_web(args: argparse.Namespace) -> int:
    import dataclasses

    import uvicorn

    from engine.pmc.theo.read import TheoSetInvalid
    from gateway.config import ConfigError, WebSettings, load_config
    from gateway.config.settings import SCHEMA
    from gateway.web.api import create_app
    from gateway.web.server import limits_of, uvicorn_config
    from gateway.web.sets import TheoSets

    web = WebSettings(**{k: default for k, (_, default) in SCHEMA["web"].items()})
    theo_dir = Path(args.theo) if args.theo else None
    if Path(args.config).is_file():
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            return _fail("config is invalid:\n  " + "\n  ".join(exc.problems), EX_CONFIG)
        web = cfg.web
        theo_dir = theo_dir or cfg.spool.root / "internal" / "theo"
    if theo_dir is None:
        return _fail(f"no --theo and no config at {args.config}", EX_CONFIG)
    if not theo_dir.is_dir():
        return _fail(f"theo folder {theo_dir} does not exist", EX_NOINPUT)
    if args.rate is not None:
        if args.rate < 0:
            return _fail("--rate must be 0 or more", 2)
        web = dataclasses.replace(web, rate_per_s=args.rate)
    try:
        sets = TheoSets(theo_dir)
    except TheoSetInvalid as exc:
        return _fail(f"theo set {theo_dir} cannot be used: {exc}", 65)
    host = args.host or web.host
    port = web.port if args.port is None else args.port
    app = create_app(sets, limits_of(web))
    log.info("web calculator listening on http://%s:%d/ theo=%s", host, port, theo_dir)
    uvicorn.Server(uvicorn_config(app, host, port, web.trusted_proxies)).run()
    return EX_OK
