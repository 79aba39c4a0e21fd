"""Public-site limits around the ASGI application: request size, per-client rate, security
headers and request metrics.

A pure ASGI middleware (no buffering of responses, so it costs little per request):

* a request whose Content-Length is over ``max_body_bytes`` is refused with 413 before the
  handler runs (a body without one is counted while it streams, by ``api.read_body``);
* each client address has a token bucket of ``rate_per_s`` requests per second with a burst of
  ``rate_burst``; an empty bucket answers 429 with ``Retry-After``. Behind a reverse proxy the
  address is the proxy's unless uvicorn is told to trust its ``X-Forwarded-For`` (``[web]
  trusted_proxies``); the proxy should then limit per client too;
* every response carries a Content-Security-Policy (same origin only, no framing), no-sniff,
  no-referrer and a no-store cache policy on the API; no cookie is ever set;
* ``posgate_http_requests_total{route,status}`` and ``posgate_http_request_seconds{route}``.
  Routes are the API's path templates, ``static`` or ``other``, so a label never carries user text.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
API_ROUTES = (
    "/api/v1/theo-sets",
    "/api/v1/contracts",
    "/api/v1/contracts/suggest",
    "/api/v1/margin",
    "/api/v1/margin/export",
    "/api/v1/positions/convert",
    "/api/v1/positions/edit",
    "/healthz",
    "/openapi.json",
)
STATIC_ROUTES = ("/", "/index.html", "/static/")


@dataclass(frozen=True)
class Limits:
    """The public-site limits; a rate of 0 turns the rate limit off."""

    max_body_bytes: int = 10 * 1024 * 1024
    rate_per_s: float = 20.0
    rate_burst: int = 60
    calc_timeout_s: float = 10.0
    max_positions: int = 100_000


def route_label(path: str) -> str:
    """The metric label of a request path: an API route, ``static`` or ``other``."""
    if path in API_ROUTES:
        return path
    if path in STATIC_ROUTES[:2] or path.startswith(STATIC_ROUTES[2]):
        return "static"
    return "other"


class RateLimiter:
    """Token buckets per client address; forgets idle clients so memory stays bounded."""

    MAX_CLIENTS = 100_000

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_s
        self.burst = float(max(burst, 1))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0.0 when the request may go on, else the seconds until a token is back."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return (1.0 - tokens) / self.rate
            if len(self._buckets) >= self.MAX_CLIENTS and client not in self._buckets:
                self._forget_full(now)
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        for key, (_, last) in list(self._buckets.items()):
            if now - last >= refill:
                del self._buckets[key]


def error_body(status: int, reason: str, message: str, **where: object) -> bytes:
    """The JSON error document every refusal of the API uses."""
    err: dict[str, object] = {"status": status, "reason": reason, "message": message}
    err.update({k: v for k, v in where.items() if v is not None})
    return json.dumps({"error": err}).encode()


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.rate = RateLimiter(limits.rate_per_s, limits.rate_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = route_label(scope.get("path", ""))
        status_seen = [500]
        api = route.startswith("/api/") or route == "/healthz"

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen[0] = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"set-cookie"
                ]
                headers.extend(SECURITY_HEADERS)
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            client = (scope.get("client") or ("-", 0))[0]
            wait = self.rate.allow(client) if route != "/healthz" else 0.0
            if wait > 0:
                await self._refuse(
                    send_guarded,
                    429,
                    "RATE_LIMITED",
                    f"more than {self.limits.rate_per_s:g} requests per second from one client",
                    retry_after=max(1, int(wait + 0.999)),
                )
                return
            length = _content_length(scope)
            if length is not None and length > self.limits.max_body_bytes:
                await self._refuse(
                    send_guarded,
                    413,
                    "TOO_LARGE",
                    f"request body of {length} bytes is over the limit of "
                    f"{self.limits.max_body_bytes} bytes",
                )
                return
            await self.app(scope, receive, send_guarded)
        finally:
            metrics.HTTP_REQUESTS.labels(route=route, status=str(status_seen[0])).inc()
            metrics.HTTP_SECONDS.labels(route=route).observe(time.perf_counter() - started)

    @staticmethod
    async def _refuse(
        send: Send, status: int, reason: str, message: str, retry_after: int | None = None
    ) -> None:
        body = error_body(status, reason, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
