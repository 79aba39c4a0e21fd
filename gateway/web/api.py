"""The HTTP API of the calculator (``/api/v1``) and the page, as one FastAPI application.

Every handler is typed, so ``/openapi.json`` describes the API as it is. The margin routes take
either a 346 position file (``text/csv`` or ``text/plain``, CSV or ASCII detected as by
``posgate margin``) or ``application/json`` ``{"positions": [...]}`` and answer with the JSON
document ``posgate margin --format json`` writes for the same input (the same keys, order and
numbers; compact, without its indentation). The work runs in a worker
thread under ``calc_timeout_s``; a calculation past it answers 503 ``TIME_LIMIT``. Reading and
writing the bodies is ``gateway.web.bodies``; the page is ``gateway.web.page``.

Errors are ``{"error": {"status", "reason", "message", "line"?, "field"?, "value"?}}``:
400 a bad query parameter, 404 an unknown route or P&L set, 405 a wrong method, 413 a body over
the limit, 415 a body type other than the three above, 422 a body that cannot be read at all
(per-record problems are not errors: they come back in ``problems`` as from the CLI), 429 the
rate limit, 503 no P&L set loaded yet or the time limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import InputRejected
from engine.pmc.contracts import (
    CONTRACT_COLUMNS,
    SUGGESTABLE,
    ContractFilter,
    list_contracts,
    sort_contracts,
    suggest_values,
)
from engine.pmc.positions.model import PositionFile
from engine.pmc.report import margin_for_file
from engine.pmc.theo.model import TheoSet
from gateway.web.bodies import (
    FILE_TYPES,
    JSON_TYPE,
    ApiError,
    check_shape,
    dump_json,
    error_response,
    error_responses,
    export,
    json_object,
    json_rows,
    margin_json,
    media_type,
    parse_file,
    positions_body_doc,
    read_body,
    rejected,
    write_346,
)
from gateway.web.guard import Guard, Limits
from gateway.web.page import mount_page
from gateway.web.positions import apply_edit, parsed_doc, parsed_file
from gateway.web.schemas import (
    ContractsDoc,
    EditDoc,
    EditIn,
    HealthDoc,
    MarginDoc,
    ParsedDoc,
    PositionsIn,
    SuggestDoc,
    TheoSetInfo,
    TheoSetsDoc,
)
from gateway.web.sets import TheoSets

log = logging.getLogger(__name__)

T = TypeVar("T")
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
INLINE_BYTES = 16 * 1024  # bodies up to this size (~80 JSON positions) skip the worker thread


TheoDate = Annotated[
    str | None,
    Query(pattern=DATE_PATTERN, description="activity date of the P&L set; default newest"),
]
AccountType = Annotated[
    Literal["C", "F", "M"], Query(description="C (CPM), F (RBH-BD) or M (RBH-MM)")
]
OptionalDate = Annotated[str, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$", description="YYYY-MM-DD")]
Firm = Annotated[
    str | None,
    Query(
        pattern=r"^\d{1,5}$",
        description="clearing firm number for records that leave it blank",
    ),
]


# -- the application -----------------------------------------------------------------------------


def create_app(sets: TheoSets, limits: Limits | None = None) -> Guard:
    """The ASGI application: the API and the page behind the public-site guard."""
    lim = limits or Limits()
    app = FastAPI(
        title="posgate portfolio margin calculator",
        version="1",
        description="CPM / RBH-BD / RBH-MM portfolio margin of positions against a theoretical "
        "P&L set. Results are hypothetical and for information only.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    limiter = anyio.CapacityLimiter(8)

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.reason, exc.message, **exc.where)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "body")]
        field = ".".join(loc) or None
        raw = first.get("input")
        value = None if raw is None or isinstance(raw, (dict, list)) else str(raw)[:200]
        return error_response(
            400,
            "BAD_PARAMETER",
            f"{field or 'request'}: {first.get('msg', 'invalid')}",
            field=field,
            value=value,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        response = error_response(exc.status_code, reason, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    async def run(fn: Callable[[], T], size: int | None = None) -> T:
        """``fn`` in a worker thread under the time limit; a body of at most ``INLINE_BYTES`` is
        computed on the event loop (its time is bounded by its size, and the thread hop would
        cost a good part of a small portfolio's request)."""
        try:
            if size is not None and size <= INLINE_BYTES:
                return fn()
            with anyio.fail_after(lim.calc_timeout_s):
                return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True, limiter=limiter)
        except InputRejected as exc:  # the sender's fault, found in the worker thread
            raise rejected(422, exc) from None
        except TimeoutError:
            raise ApiError(
                503,
                "TIME_LIMIT",
                f"the calculation took more than {lim.calc_timeout_s:g} s; send fewer positions",
            ) from None

    def theo_for(theo_date: str | None) -> TheoSet:
        theo = sets.get(theo_date)
        if theo is not None:
            return theo
        if theo_date is None:
            raise ApiError(503, "NO_THEO_SET", "no theoretical P&L set is loaded yet")
        raise ApiError(
            404,
            "THEO_SET_NOT_FOUND",
            f"theo_date={theo_date!r} has no P&L set here",
            field="theo_date",
            value=theo_date,
        )

    async def positions_in(
        request: Request, firm: str | None, editing: bool = False
    ) -> tuple[Callable[[], PositionFile], int]:
        """The body read, and the reading of its positions to run in the worker thread together
        with what is done with them (one thread hop per request)."""
        kind = media_type(request)
        if kind not in FILE_TYPES and kind != JSON_TYPE:
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type {kind or '(none)'!r} is not text/csv, text/plain or "
                "application/json",
                field="content-type",
            )
        body = await read_body(request, lim.max_body_bytes)
        if kind in FILE_TYPES:
            return (lambda: parse_file(body, firm)), len(body)

        def from_json() -> PositionFile:
            rows = json_rows(body, lim.max_positions)
            if firm:
                rows = [{**r, "firm": r.get("firm") or firm} for r in rows]
            return parsed_file(rows, allow_zero=editing)

        return from_json, len(body)

    @app.get("/healthz", response_model=HealthDoc, responses=error_responses(503), tags=["service"])
    def healthz() -> HealthDoc | Response:
        """Ready when a P&L set is loaded (a load balancer sends nothing to a process without)."""
        theo = sets.get(None)
        if theo is None:
            return error_response(503, "NO_THEO_SET", "no theoretical P&L set is loaded yet")
        return HealthDoc(status="ok", theo_date=theo.activity_date)

    @app.get("/api/v1/theo-sets", response_model=TheoSetsDoc, tags=["P&L sets"])
    def theo_sets() -> TheoSetsDoc:
        """The P&L sets this process serves, newest first."""
        found = sets.all()
        return TheoSetsDoc(
            latest=found[0].activity_date if found else None,
            theo_sets=[
                TheoSetInfo(date=t.activity_date, name=t.name, source=t.source, instruments=t.size)
                for t in found
            ],
        )

    @app.get(
        "/api/v1/contracts",
        response_model=ContractsDoc,
        responses=error_responses(400, 404, 503),
        tags=["P&L sets"],
    )
    def contracts(
        account_type: AccountType,
        theo_date: TheoDate = None,
        product_group: Annotated[str, Query(max_length=32)] = "",
        class_group: Annotated[str, Query(max_length=32)] = "",
        underlying: Annotated[str, Query(max_length=32)] = "",
        symbol: Annotated[str, Query(max_length=32)] = "",
        security_type: Annotated[Literal["", "O", "I", "F", "S", "W"], Query()] = "",
        series_date: OptionalDate = "",
        expiration_date: OptionalDate = "",
        put_call: Annotated[Literal["", "C", "P"], Query(description="'' both")] = "",
        strike: Annotated[float | None, Query(gt=0, lt=1e9)] = None,
        sort: Annotated[
            Literal[
                "",
                "product_group",
                "class_group",
                "underlying",
                "security_type",
                "symbol",
                "exchange",
                "exercise_style",
                "settlement_style",
                "series_date",
                "expiration_date",
                "strike",
                "put_call",
            ],
            Query(description="column to sort by; '' the default sort"),
        ] = "",
        descending: bool = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        """Available contracts of a set for one account type, with the calculator's filters.

        Required: the account type and one of class group, underlying or symbol; a product group
        needs a class group too (reason ``MISSING_FILTER``, 400)."""
        theo = theo_for(theo_date)
        flt = ContractFilter(
            account_type=account_type,
            product_group=product_group,
            class_group=class_group,
            underlying=underlying,
            symbol=symbol,
            security_type=security_type,
            series_date=series_date,
            expiration_date=expiration_date,
            put_call=put_call,
            strike=strike,
        )
        try:
            found = sort_contracts(list_contracts(theo, flt), sort, descending=descending)
        except InputRejected as exc:
            raise rejected(400, exc) from None
        doc = {  # ContractsDoc, written directly (no model validation of up to 10,000 rows)
            "theo_date": theo.activity_date,
            "columns": [[name, heading] for name, heading in CONTRACT_COLUMNS],
            "total": len(found),
            "contracts": [c.as_dict() for c in found[:limit]],
        }
        return Response(dump_json(doc), media_type=JSON_TYPE)

    @app.get(
        "/api/v1/contracts/suggest",
        response_model=SuggestDoc,
        responses=error_responses(400, 404, 503),
        tags=["P&L sets"],
    )
    def suggest(
        account_type: AccountType,
        column: Annotated[Literal["product_group", "class_group", "underlying", "symbol"], Query()],
        prefix: Annotated[str, Query(max_length=32)] = "",
        theo_date: TheoDate = None,
    ) -> SuggestDoc:
        """Values of one filter field that start with what the user typed (auto suggestion)."""
        assert column in SUGGESTABLE
        theo = theo_for(theo_date)
        return SuggestDoc(column=column, values=suggest_values(theo, account_type, column, prefix))

    @app.post(
        "/api/v1/margin",
        response_model=MarginDoc,
        responses=error_responses(400, 404, 413, 415, 422, 429, 503),
        openapi_extra=positions_body_doc(),
        tags=["margin"],
    )
    async def margin(request: Request, theo_date: TheoDate = None, firm: Firm = None) -> Response:
        """Portfolio margin of a 346 file or JSON positions: the JSON of ``posgate margin``."""
        theo = theo_for(theo_date)
        read, size = await positions_in(request, firm)
        body = await run(lambda: margin_json(read(), theo), size)
        return Response(body, media_type=JSON_TYPE)

    @app.post(
        "/api/v1/margin/export",
        response_class=Response,
        responses={
            200: {
                "content": {
                    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
                "description": "the Detail To or Summary To export",
            },
            **error_responses(400, 404, 413, 415, 422, 429, 503),
        },
        openapi_extra=positions_body_doc(),
        tags=["margin"],
    )
    async def marginexport(
        request: Request,
        part: Annotated[Literal["detail", "summary"], Query()] = "detail",
        format: Annotated[Literal["pdf", "csv"], Query()] = "csv",
        theo_date: TheoDate = None,
        firm: Firm = None,
    ) -> Response:
        """The results as the calculator's Detail To / Summary To export, PDF or CSV."""
        theo = theo_for(theo_date)
        read, _ = await positions_in(request, firm)
        payload = await run(lambda: export(margin_for_file(read(), theo), part, format))
        kind = "application/pdf" if format == "pdf" else "text/csv; charset=utf-8"
        name = f"margin-{part}-{theo.activity_date}.{format}"
        return Response(
            payload,
            media_type=kind,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    @app.post(
        "/api/v1/positions/convert",
        response_class=Response,
        responses={
            200: {
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "text/plain": {"schema": {"type": "string"}},
                    JSON_TYPE: {"schema": {"$ref": "#/components/schemas/ParsedDoc"}},
                },
                "description": "the positions as a 346 file (csv, ascii) or read for the editor",
            },
            **error_responses(400, 404, 413, 415, 422, 429, 503),
        },
        openapi_extra=positions_body_doc(),
        tags=["positions"],
    )
    async def convert(
        request: Request,
        to: Annotated[Literal["csv", "ascii", "json"], Query()],
        theo_date: TheoDate = None,
        firm: Firm = None,
    ) -> Response:
        """A 346 file or JSON positions written as a 346 CSV or ASCII file, or (``to=json``) read
        for the editor: the positions that can be priced, with the counts and problems."""
        read, size = await positions_in(request, firm, editing=to != "json")
        if to == "json":
            theo = theo_for(theo_date)
            doc = await run(lambda: parsed_doc(read(), theo), size)
            return Response(dump_json(doc), media_type=JSON_TYPE)
        payload = await run(lambda: write_346(read(), to), size)
        kind = "text/csv; charset=utf-8" if to == "csv" else "text/plain; charset=utf-8"
        name = "positions.csv" if to == "csv" else "positions.txt"
        disposition = f'attachment; filename="{name}"'
        return Response(payload, media_type=kind, headers={"content-disposition": disposition})

    @app.post(
        "/api/v1/positions/edit",
        response_model=EditDoc,
        responses=error_responses(400, 404, 413, 415, 422, 429, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {JSON_TYPE: {"schema": {"$ref": "#/components/schemas/EditIn"}}},
            }
        },
        tags=["positions"],
    )
    async def edit(request: Request, theo_date: TheoDate = None) -> Response:
        """One edit of the Selected Positions list (add contracts, set quantity, modify, add a
        stock not in the set, delete, select by the list's filter); the list comes and goes."""
        theo = theo_for(theo_date)
        if media_type(request) != JSON_TYPE:
            raise ApiError(
                415, "UNSUPPORTED_MEDIA_TYPE", "an edit is application/json", field="content-type"
            )
        body = await read_body(request, lim.max_body_bytes)
        doc = json_object(body)
        rows = doc.get("positions")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ApiError(
                422, "BAD_JSON", "positions must be a list of objects", field="positions"
            )
        if len(rows) > lim.max_positions:
            raise ApiError(413, "TOO_MANY_POSITIONS", f"at most {lim.max_positions} positions")
        check_shape(EditIn, doc)

        def work() -> bytes:
            try:
                return dump_json(apply_edit(theo, doc))
            except InputRejected as exc:
                raise rejected(422, exc) from None
            except (TypeError, ValueError, OverflowError) as exc:
                raise ApiError(422, "BAD_VALUE", f"the edit cannot be applied: {exc}") from None

        return Response(await run(work), media_type=JSON_TYPE)

    mount_page(app)
    _document_bodies(app)
    return Guard(app, lim)


def _document_bodies(app: FastAPI) -> None:
    """Build the OpenAPI document once, with the schemas of the raw-read request bodies."""
    doc = app.openapi()
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (PositionsIn, ParsedDoc, EditIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
