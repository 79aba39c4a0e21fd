"""Running the calculator under uvicorn: in the foreground (``posgate web``) or as a daemon
component of ``posgate serve`` (its own thread and event loop; the daemon's signal handling is
left alone because uvicorn installs handlers only on the main thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import uvicorn

from gateway.config import WebSettings
from gateway.web.guard import Limits

log = logging.getLogger(__name__)


def limits_of(web: WebSettings) -> Limits:
    return Limits(
        max_body_bytes=web.max_body_bytes,
        rate_per_s=web.rate_per_s,
        rate_burst=web.rate_burst,
        calc_timeout_s=web.calc_timeout_s,
        max_positions=web.max_positions,
    )


def uvicorn_config(app: Any, host: str, port: int, trusted_proxies: str = "") -> uvicorn.Config:
    """uvicorn settings of a public-facing listener: no access log (the metrics count requests),
    no server header, bounded keep-alive and header sizes."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=True,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=64 * 1024,
        limit_concurrency=512,
        lifespan="off",
    )


class WebServer:
    """The calculator as a daemon component."""

    name = "web"

    def __init__(self, app: Any, host: str, port: int, trusted_proxies: str = "") -> None:
        self.host = host
        self.port = port
        self._server = uvicorn.Server(uvicorn_config(app, host, port, trusted_proxies))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"web calculator could not listen on {self.host}:{self.port}")
            time.sleep(0.02)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("web calculator listening on http://%s:%d/", self.host, self.port)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def stop(self, timeout: float) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
