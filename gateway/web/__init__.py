"""The portfolio margin calculator over HTTP: one page and a versioned JSON API.

``api.create_app`` builds the ASGI application (typed FastAPI handlers, so ``/openapi.json`` is
generated from them), ``guard`` wraps it with the public-site limits (body size, per-client rate,
security headers, request metrics), ``server`` runs it under uvicorn as ``posgate web`` or as a
component of ``posgate serve``. The page lives in ``static/`` (plain HTML, CSS and JavaScript, no
build step). Nothing is kept between requests: positions live in the browser.
"""
