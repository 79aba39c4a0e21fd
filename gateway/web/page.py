"""The calculator's page and its assets, served from the package by the API application."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import Response

from gateway.web.bodies import ApiError

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def mount_page(app: FastAPI) -> None:
    """The page and its assets, read once from the package (no file system walk per request)."""
    root = resources.files("gateway.web") / "static"
    assets: dict[str, tuple[bytes, str]] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            assets[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])

    def asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise ApiError(404, "NOT_FOUND", f"no asset {name!r}")
        return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return asset("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        return asset(name)
