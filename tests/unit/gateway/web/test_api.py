"""The HTTP API through its ASGI application: routes, errors, limits and headers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway import metrics
from gateway.web.api import create_app
from gateway.web.guard import Limits, RateLimiter
from gateway.web.sets import TheoSets

REPO = Path(__file__).resolve().parents[4]
THEO = REPO / "config" / "samples" / "pmc" / "theo"
POSITIONS_CSV = REPO / "config" / "samples" / "pmc" / "positions.csv"
POSITIONS_TXT = REPO / "config" / "samples" / "pmc" / "positions.txt"


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(TheoSets(THEO), Limits(rate_per_s=0)))


def _cli_json(positions: Path) -> bytes:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "margin", "--theo", str(THEO / "2026-11-20")]
        + ["--positions", str(positions), "--format", "json"],
        capture_output=True,
        check=True,
        cwd=REPO,
    )
    return out.stdout


@pytest.mark.parametrize("path,kind", [(POSITIONS_CSV, "text/csv"), (POSITIONS_TXT, "text/plain")])
def test_margin_of_a_346_file_is_the_cli_json(client: TestClient, path: Path, kind: str) -> None:
    r = client.post("/api/v1/margin", content=path.read_bytes(), headers={"content-type": kind})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(_cli_json(path))
    # the same document, key order included, only without the indentation
    assert r.content == json.dumps(json.loads(_cli_json(path)), separators=(",", ":")).encode()
    # the sample files write the firm as 5 (CSV) and 0005 (ASCII): the firm id is five digits
    assert {f["firm"] for f in r.json()["firms"]} == {"00005"}
    assert {a["firm"] for a in r.json()["accounts"]} == {"00005"}


def _edited(client: TestClient) -> list[dict[str, object]]:
    found = client.get("/api/v1/contracts", params={"account_type": "C", "underlying": "SPX"})
    rows = [c["row"] for c in found.json()["contracts"][:2]]
    r = client.post(
        "/api/v1/positions/edit",
        json={"positions": [], "op": "add_contracts", "rows": rows, "firm": "5", "account": "A1"},
    )
    assert r.status_code == 200, r.text
    positions = r.json()["positions"]
    assert [p["quantity"] for p in positions] == [0, 0]  # the list starts at quantity 0
    assert [p["firm"] for p in positions] == ["00005", "00005"]  # typed as 5
    for i, qty in enumerate((10, -4)):
        r = client.post(
            "/api/v1/positions/edit",
            json={"positions": positions, "op": "set_quantity", "rows": [i], "quantity": qty},
        )
        positions = r.json()["positions"]
    return positions


def test_json_positions_give_the_same_numbers_as_their_346_file(client: TestClient) -> None:
    positions = _edited(client)
    assert [p["quantity"] for p in positions] == [10, -4]
    assert positions[0]["class_group"] == "SPX" and positions[0]["in_set"] is True
    via_json = client.post("/api/v1/margin", json={"positions": positions}).json()
    csv = client.post("/api/v1/positions/convert?to=csv", json={"positions": positions})
    assert csv.status_code == 200 and csv.content.startswith(b"346")
    via_file = client.post(
        "/api/v1/margin", content=csv.content, headers={"content-type": "text/csv"}
    ).json()
    assert via_json["accounts"] == via_file["accounts"]
    assert via_json["accounts"][0]["requirement"] > 0
    assert via_json["counts"]["accepted"] == 2


def test_ascii_save_reads_back_as_the_same_positions(client: TestClient) -> None:
    positions = _edited(client)
    text = client.post("/api/v1/positions/convert?to=ascii", json={"positions": positions})
    assert text.status_code == 200
    back = client.post(
        "/api/v1/positions/convert?to=json",
        content=text.content,
        headers={"content-type": "text/plain"},
    ).json()
    assert back["format"] == "ascii"
    assert back["counts"]["accepted"] == 2
    keys = ("symbol", "security_type", "put_call", "series_date", "strike", "quantity")
    assert [{k: p[k] for k in keys} for p in back["positions"]] == [
        {k: p[k] for k in keys} for p in positions
    ]


def test_zero_quantity_is_rejected_by_the_calculation(client: TestClient) -> None:
    positions = _edited(client)
    positions[1]["quantity"] = 0
    doc = client.post("/api/v1/margin", json={"positions": positions}).json()
    assert doc["counts"]["rejected"] == 1
    assert [p["reason"] for p in doc["problems"]] == ["ZERO_QUANTITY"]


def test_a_stock_in_the_set_cannot_be_added_as_a_stock_not_in_it(client: TestClient) -> None:
    stocks = client.get(
        "/api/v1/contracts", params={"account_type": "C", "class_group": "SPY"}
    ).json()["contracts"]
    in_set = next(c["symbol"] for c in stocks if c["security_type"] == "S")
    body = {"positions": [], "op": "add_stock", "firm": "5", "account_type": "C", "price": 10.0}
    refused = client.post("/api/v1/positions/edit", json={**body, "symbol": in_set, "quantity": 5})
    assert refused.status_code == 422
    assert refused.json()["error"]["reason"] == "STOCK_IN_SET"
    added = client.post("/api/v1/positions/edit", json={**body, "symbol": "ZZNEW", "quantity": 5})
    assert added.status_code == 200
    [row] = added.json()["positions"]
    assert row["symbol"] == "ZZNEW" and row["market_value"] == 10.0 and row["in_set"] is False


def test_modify_delete_and_select(client: TestClient) -> None:
    positions = _edited(client)
    r = client.post(
        "/api/v1/positions/edit",
        json={"positions": positions, "op": "modify", "rows": [1], "account": "B2"},
    )
    positions = r.json()["positions"]
    assert [p["account"] for p in positions] == ["A1", "B2"]
    picked = client.post(
        "/api/v1/positions/edit",
        json={"positions": positions, "op": "select", "filter": {"account": "B2"}},
    ).json()
    assert picked["selected"] == [1]
    left = client.post(
        "/api/v1/positions/edit", json={"positions": positions, "op": "delete", "rows": [0]}
    ).json()["positions"]
    assert [p["account"] for p in left] == ["B2"]


def test_contracts_rules_and_suggestions(client: TestClient) -> None:
    r = client.get("/api/v1/contracts", params={"account_type": "C", "product_group": "9"})
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "MISSING_FILTER"
    doc = client.get("/api/v1/contracts", params={"account_type": "C", "symbol": "SPX"}).json()
    assert [c[1] for c in doc["columns"]][:3] == ["Prod Grp", "Class Grp", "Underlying"]
    strikes = [c["strike"] for c in doc["contracts"]]
    by_strike = client.get(
        "/api/v1/contracts",
        params={"account_type": "C", "symbol": "SPX", "sort": "strike", "descending": "true"},
    ).json()["contracts"]
    assert [c["strike"] for c in by_strike] == sorted(strikes, reverse=True)
    sug = client.get(
        "/api/v1/contracts/suggest",
        params={"account_type": "C", "column": "underlying", "prefix": "sp"},
    ).json()
    assert sug["values"] and all(v.startswith("SP") for v in sug["values"])


def test_exports(client: TestClient) -> None:
    body = POSITIONS_CSV.read_bytes()
    kinds = {"content-type": "text/csv"}
    pdf = client.post("/api/v1/margin/export?part=detail&format=pdf", content=body, headers=kinds)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    csv = client.post("/api/v1/margin/export?part=summary&format=csv", content=body, headers=kinds)
    assert csv.text.splitlines()[0].startswith("theo_date,level,firm")


@pytest.mark.parametrize(
    "request_args,status,reason",
    [
        (dict(content=b"x", headers={"content-type": "image/png"}), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (dict(content=b"", headers={"content-type": "text/csv"}), 422, "EMPTY"),
        (dict(content=b"{", headers={"content-type": "application/json"}), 422, "BAD_JSON"),
        (dict(json={"positions": [1]}), 422, "BAD_JSON"),
    ],
)
def test_bad_bodies(client: TestClient, request_args: dict, status: int, reason: str) -> None:
    r = client.post("/api/v1/margin", **request_args)
    assert r.status_code == status
    assert r.json()["error"]["reason"] == reason


def test_bad_parameters_and_unknown_sets(client: TestClient) -> None:
    r = client.get("/api/v1/contracts", params={"account_type": "C", "strike": "abc"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "status": 400,
        "reason": "BAD_PARAMETER",
        "message": r.json()["error"]["message"],
        "field": "strike",
        "value": "abc",
    }
    r = client.post("/api/v1/margin?theo_date=1999-01-01", json={"positions": []})
    assert r.status_code == 404 and r.json()["error"]["reason"] == "THEO_SET_NOT_FOUND"
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["reason"] == "NOT_FOUND"


def test_size_limit_and_no_set(tmp_path: Path) -> None:
    small = TestClient(create_app(TheoSets(THEO), Limits(max_body_bytes=100, rate_per_s=0)))
    r = small.post("/api/v1/margin", content=b"3" * 101, headers={"content-type": "text/csv"})
    assert r.status_code == 413 and r.json()["error"]["reason"] == "TOO_LARGE"
    empty = TestClient(create_app(TheoSets(tmp_path)))
    r = empty.get("/healthz")
    assert r.status_code == 503 and r.json()["error"]["reason"] == "NO_THEO_SET"


def test_rate_limit_answers_429_with_retry_after() -> None:
    limited = TestClient(create_app(TheoSets(THEO), Limits(rate_per_s=1, rate_burst=3)))
    codes = [limited.get("/api/v1/theo-sets").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    r = limited.get("/api/v1/theo-sets")
    assert r.json()["error"]["reason"] == "RATE_LIMITED" and int(r.headers["retry-after"]) >= 1


def test_rate_limiter_refills_per_client() -> None:
    now = [0.0]
    rl = RateLimiter(2.0, 2, clock=lambda: now[0])
    assert [rl.allow("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    assert rl.allow("b") == 0.0
    now[0] = 0.5
    assert rl.allow("a") == 0.0


def test_security_headers_no_cookie_and_page(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and b"Portfolio Margin Calculator" in r.content
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in r.headers
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    api = client.get("/api/v1/theo-sets")
    assert api.headers["cache-control"] == "no-store"


def test_request_metrics_by_route_and_status(client: TestClient) -> None:
    def count(route: str, status: str) -> float:
        value = metrics.HTTP_REQUESTS.labels(route=route, status=status)._value.get()
        return float(value)

    before = count("/api/v1/contracts", "400"), count("other", "404")
    client.get("/api/v1/contracts", params={"account_type": "C"})
    client.get("/no/such/path/with/user/text")
    assert count("/api/v1/contracts", "400") == before[0] + 1
    assert count("other", "404") == before[1] + 1


def test_openapi_lists_every_route(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert set(doc["paths"]) == {
        "/healthz",
        "/api/v1/theo-sets",
        "/api/v1/contracts",
        "/api/v1/contracts/suggest",
        "/api/v1/margin",
        "/api/v1/margin/export",
        "/api/v1/positions/convert",
        "/api/v1/positions/edit",
    }
    body = doc["paths"]["/api/v1/margin"]["post"]["requestBody"]["content"]
    assert set(body) == {"text/csv", "text/plain", "application/json"}
    assert json.dumps(doc).count("PositionsIn") >= 2
