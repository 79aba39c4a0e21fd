"""The portfolio margin calculator over HTTP: one page and a versioned JSON API.

``api.create_app`` builds the ASGI application (typed FastAPI handlers, so ``/openapi.json`` is
generated from them) with its routes; ``bodies`` reads and writes the request and response bodies
(media types, size limit, JSON shapes, 346 files, error documents); ``page`` serves the page and
its assets; ``schemas`` are the documented shapes; ``guard`` wraps the application with the
public-site limits (body size, per-client rate, security headers, request metrics); ``server``
runs it under uvicorn as ``posgate web`` or as a component of ``posgate serve``. The page lives in
``static/`` (plain HTML, CSS and JavaScript, no build step). Nothing is kept between requests:
positions live in the browser.
"""
