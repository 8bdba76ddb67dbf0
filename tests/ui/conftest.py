"""The whole product on loopback for the browser tests: moto, the local Batch stand-in, the real
Airflow (``faceidx_dev.local.product.LocalProduct``), and Debian's Chromium driven by Playwright.

One product serves the whole module (starting Airflow costs about a minute on two cores); the tests
run in file order, as a user would click: bootstrap, index, read the logs, backfill. A failing test
gets the Airflow components' logs and a screenshot of the page it was on.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceidx_dev.local.product import LocalProduct

CHROMIUM = os.environ.get("FACEIDX_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("FACEIDX_SCREENSHOTS", REPO / "ui-output"))
# the flags a root, offline, headless Chromium needs here (no sandbox, no background connections)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    product = item.funcargs.get("product") if hasattr(item, "funcargs") else None
    if product is not None and product.stack is not None:
        report.sections.append((f"airflow components ({report.when})", product.stack.diagnostics()))
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if page is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        target = SHOTS / f"failed-{item.name}.png"
        try:
            page.screenshot(path=str(target), full_page=True)
            report.sections.append(("screenshot", f"{target} (url {page.url})"))
        except Exception as exc:  # the page may be gone with the browser
            report.sections.append(("screenshot", f"none: {exc!r}"))


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> Iterator[LocalProduct]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium package")
    local = LocalProduct(
        work=tmp_path_factory.mktemp("ui-product"),
        assets=assets_dir,
        # The tests trigger face_indexing from the UI, which unpauses it; its timetable must not start
        # runs of its own then. With catchup off, unpausing runs the latest past tick once if it is
        # after start_date (2026-01-01): 29 February last ticked in 2024 and next ticks in 2028.
        indexing_schedule="0 0 29 2 *",
        max_workers=2,
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def _context(browser, product):
    from tests.ui.pages import login

    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(30_000)
    login(context.new_page(), product)
    yield context
    context.close()


@pytest.fixture
def page(_context):
    page = _context.new_page()
    yield page
    page.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
