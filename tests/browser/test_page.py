"""The calculator page in Debian's chromium (Playwright) against the real ``posgate web``.

One session as a user has it: filter contracts, add two, set quantities, try a stock the set has
(refused) and add one it has not (in a basket), calculate, open each results tab, export a PDF,
save the positions as ASCII and upload that file again. Screenshots go to the test's folder (or
to ``$POSGATE_SCREENSHOTS``); the chart's is checked for its loss and gain bars.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.web import WebProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOSS = (0xB3, 0x26, 0x1E)
GAIN = (0x2E, 0x7D, 0x32)


def _unavailable(problem: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser test needs {problem} in CI")
    pytest.skip(f"{problem} is not available")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    log = tmp_path_factory.mktemp("web") / "web.log"
    proc = WebProcess(log=log)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        _unavailable("Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _count_colour(png: bytes, rgb: tuple[int, int, int]) -> int:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(
        1 for px in img.getdata() if all(abs(a - b) <= 12 for a, b in zip(px, rgb, strict=True))
    )


def test_a_session_in_the_browser(web: WebProcess, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shots = Path(os.environ.get("POSGATE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert "11/20/2026" in page.inner_text("#theo-info")

    # the required-field rule, then a filter that finds contracts
    page.click("#contracts-ok")
    assert "one of class group, underlying or symbol" in page.inner_text("#message")
    page.fill("#contract-filter [name=underlying]", "SPX")
    page.click("#contracts-ok")
    page.wait_for_selector("#contracts-table tbody tr")
    assert page.locator("#contracts-table tbody tr").count() == 7
    page.click("#contracts-table thead th:has-text('Strike')")  # sort by strike
    page.wait_for_selector("#contracts-table thead th:has-text('Strike ▲')")
    boxes = page.locator("#contracts-table tbody input[type=checkbox]")
    boxes.nth(1).check()
    boxes.nth(2).check()
    page.click("#add-selected")
    page.wait_for_selector("#positions-table tbody tr")
    assert page.locator("#positions-table .qty").evaluate_all("a => a.map(e => e.value)") == [
        "0",
        "0",
    ]

    # a calculation needs non-zero quantities
    page.click("#submit")
    assert "must not be zero" in page.inner_text("#message")
    for i, qty in enumerate(("10", "-4")):
        q = page.locator("#positions-table .qty").nth(i)
        q.fill(qty)
        q.press("Tab")
        page.wait_for_function(
            f"document.querySelectorAll('#positions-table .qty')[{i}].value === '{qty}'"
        )

    # a stock the set prices is refused; one it does not is added in the SPX basket
    page.click("#add-stock")
    page.fill("#stock-form [name=symbol]", "SPY")
    page.fill("#stock-form [name=price]", "500")
    page.fill("#stock-form [name=quantity]", "100")
    page.click("#stock-save")
    page.wait_for_selector("#stock-error:not([hidden])")
    assert "included in the P&L file" in page.inner_text("#stock-error")
    page.fill("#stock-form [name=symbol]", "ZZNEW")
    page.fill("#stock-form [name=basket_id]", "10101")
    page.click("#stock-save")
    page.wait_for_selector("#positions-table tbody tr:nth-child(3)")
    page.screenshot(path=str(shots / "positions.png"), full_page=True)

    # calculate and open every tab
    page.click("#submit")
    page.wait_for_selector("#results-view:not([hidden])")
    assert page.locator("#results-table tbody tr").count() >= 2
    for tab in ("groups", "classes", "contracts"):
        page.click(f"[data-tab={tab}]")
        assert page.locator("#results-table tbody tr").count() >= 1
    page.click("#results-table tbody tr:has-text('ZZNEW')")
    page.click("[data-tab=baskets]")
    assert "ZZNEW" in page.inner_text("#results-table tbody")
    page.click("[data-tab=groups]")
    page.wait_for_selector("#chart rect")
    assert page.locator("#chart rect").count() == 10
    page.screenshot(path=str(shots / "results.png"), full_page=True)
    chart = page.locator("#chart").screenshot(path=str(shots / "chart.png"))
    assert _count_colour(chart, LOSS) > 200, "the chart shows no loss bars"

    # the Detail To PDF export
    with page.expect_download() as dl:
        page.click("[data-export=detail][data-format=pdf]")
    pdf = Path(dl.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")

    # save as ASCII, then upload the file again and accept it
    page.click("#show-positions")
    with page.expect_download() as dl:
        page.click("#save-ascii")
    saved = tmp_path / "positions.txt"
    shutil.copy(dl.value.path(), saved)
    lines = saved.read_text().splitlines()
    assert len([line for line in lines if line.startswith("346 ")]) == 3
    page.set_input_files("#upload", str(saved))
    page.wait_for_selector("#upload-dialog[open]")
    assert "Accepted\n3" in page.inner_text("#upload-counts").replace("\t", "\n")
    page.click("#upload-accept")
    page.wait_for_function("document.querySelectorAll('#positions-table tbody tr').length === 6")
    assert errors == []
