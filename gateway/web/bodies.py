"""Request and response bodies of the HTTP API: media types, the size limit while a body
streams, the JSON shape checks, 346 files in and out, and the error documents.

Handlers (``gateway.web.api``) read a body with ``read_body``, turn it into positions with
``json_rows`` / ``parse_file`` and answer with ``report_json``, ``export`` or ``write_346``; every
refusal is an ``ApiError`` that the application renders with ``error_response``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from engine.errors import InputRejected
from engine.pmc.positions.model import PositionFile
from engine.pmc.positions.read import parse_position_file
from engine.pmc.positions.write import render_position_file
from engine.pmc.report import MarginReport, count_records, margin_for_file
from engine.pmc.resolve import resolve_positions
from engine.pmc.small import SMALL_LIMIT, small_margin
from engine.pmc.theo.model import TheoSet
from gateway.web.guard import error_body
from gateway.web.schemas import ErrorDoc

FILE_TYPES = ("text/csv", "text/plain")
JSON_TYPE = "application/json"


class ApiError(Exception):
    """A refusal with its status, reason code and where the problem was."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.where = {"line": line, "field": field, "value": value}


# -- OpenAPI descriptions of the raw-read bodies -------------------------------------------------


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route for its error statuses."""
    return {code: {"model": ErrorDoc} for code in codes}


def positions_body_doc(json_schema: bool = True) -> dict[str, Any]:
    """The request body of a route that takes a 346 file (and JSON positions)."""
    content: dict[str, Any] = {
        "text/csv": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
    }
    if json_schema:
        content[JSON_TYPE] = {"schema": {"$ref": "#/components/schemas/PositionsIn"}}
    return {"requestBody": {"required": True, "content": content}}


# -- errors --------------------------------------------------------------------------------------


def error_response(status: int, reason: str, message: str, **where: object) -> Response:
    """The JSON error document as a response (503 says when to retry)."""
    headers = {"retry-after": "5"} if status == 503 else None
    return Response(
        error_body(status, reason, message, **where),
        status_code=status,
        media_type=JSON_TYPE,
        headers=headers,
    )


def rejected(status: int, exc: InputRejected) -> ApiError:
    """An engine refusal of the sender's input as an API error with its line and field."""
    return ApiError(
        status, exc.reason, exc.message, line=exc.location.line, field=exc.location.field
    )


# -- bodies in -----------------------------------------------------------------------------------


def media_type(request: Request) -> str:
    """The request's Content-Type without its parameters, lower case ('' when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "TOO_LARGE", f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 422 ``BAD_JSON``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, "BAD_JSON", f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "BAD_JSON", "the body must be a JSON object")
    return doc


def check_shape(model: type[BaseModel], doc: dict[str, Any]) -> None:
    """Types and sizes as the document declares them (422 naming the first wrong field); the
    values themselves are the engine's to judge, record by record."""
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc", ())
        line = (
            loc[1] + 1
            if len(loc) > 1 and loc[0] == "positions" and isinstance(loc[1], int)
            else None
        )
        raise ApiError(
            422,
            "BAD_JSON",
            f"{'.'.join(str(p) for p in loc) or 'body'}: {first.get('msg', 'invalid')}",
            line=line,
            field=str(loc[-1]) if loc else None,
        ) from None


def json_rows(body: bytes, max_positions: int) -> list[dict[str, object]]:
    """The rows of a ``{"positions": [...]}`` body, shape-checked, at most ``max_positions``."""
    from gateway.web.schemas import PositionsIn

    doc = json_object(body)
    if not isinstance(doc.get("positions"), list):
        raise ApiError(422, "BAD_JSON", 'the body must be {"positions": [...]}', field="positions")
    rows: list[dict[str, object]] = doc["positions"]
    if len(rows) > max_positions:
        raise ApiError(
            413,
            "TOO_MANY_POSITIONS",
            f"{len(rows)} positions; at most {max_positions} in one request",
            field="positions",
        )
    check_shape(PositionsIn, doc)
    return rows


def parse_file(body: bytes, firm: str | None) -> PositionFile:
    """A 346 file body (CSV or ASCII) read as ``posgate margin`` reads it."""
    try:
        return parse_position_file(body, default_firm=firm)
    except InputRejected as exc:
        raise rejected(422, exc) from None


# -- bodies out ----------------------------------------------------------------------------------


def margin_json(parsed: PositionFile, theo: TheoSet) -> bytes:
    """The document of ``posgate margin --format json`` for a parsed file, compact (the same
    keys, order and values without the indentation). Up to ``SMALL_LIMIT`` positions it is
    computed by the engine's plain-Python path (the same document; numpy's fixed cost per call
    would be most of a small portfolio's request); orjson writes it."""
    if len(parsed.positions) > SMALL_LIMIT:
        from gateway.outputs.margin.data import report_document

        return dump_json(report_document(margin_for_file(parsed, theo)))
    res = resolve_positions(parsed.positions, theo)
    counts, problems = count_records(parsed, res)
    small = small_margin(res)
    return dump_json(
        {
            "theo_date": theo.activity_date,
            "counts": counts.as_dict(),
            "accounts": small.accounts,
            "firms": small.firms,
            "problems": [p.as_dict() for p in problems],
        }
    )


def dump_json(doc: object) -> bytes:
    """A response document as compact UTF-8 JSON (orjson; the standard library for what orjson
    refuses, such as an integer past 64 bits)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def export(report: MarginReport, part: str, fmt: str) -> bytes:
    """The Detail To / Summary To export of a report, CSV or PDF."""
    from gateway.outputs.margin.data import results_csv, summary_csv
    from gateway.outputs.margin.pdf import report_pdf

    if fmt == "csv":
        return results_csv(report) if part == "detail" else summary_csv(report)
    return report_pdf(report)


def write_346(parsed: PositionFile, to: str) -> bytes:
    """Positions written as a 346 file, ``csv`` or ``ascii``."""
    try:
        return render_position_file(parsed.positions, fmt=to)
    except InputRejected as exc:
        raise rejected(422, exc) from None
