"""/v1/docs in a real headless browser that cannot reach the internet: the operations are listed and one runs.

Needs a Chromium (Debian's `chromium`, which .ci/run installs) and Playwright's Python client, which drives
that browser through `executable_path` (no downloaded browser). Skipped where no Chromium is installed.
"""

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.local_stack import StackProcess

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api")
BROWSER = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
)


@pytest.fixture
def browser_page(stack: StackProcess) -> Iterator[tuple[Any, list[str]]]:
    if BROWSER is None:
        if os.environ.get("SMS_REQUIRE_BROWSER"):  # .ci/run installs one: its absence there is a failure
            pytest.fail("SMS_REQUIRE_BROWSER is set but no Chromium is installed")
        pytest.skip("no Chromium installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
        try:
            opened = browser.new_page()
            refused: list[str] = []

            def offline(route: Any) -> None:  # only the platform answers: a CDN would be unreachable
                url = route.request.url
                if url.startswith(stack.base_url):
                    route.continue_()
                else:
                    refused.append(url)
                    route.abort()

            opened.route("**/*", offline)
            yield opened, refused
        finally:
            browser.close()


def test_swagger_ui_lists_every_operation_and_runs_one_without_internet(
    browser_page: tuple[Any, list[str]], stack: StackProcess
) -> None:
    page, refused = browser_page
    document = httpx.get(f"{stack.base_url}/v1/openapi.json", timeout=30).json()
    operations = sum(len(item) for item in document["paths"].values())

    page.goto(f"{stack.base_url}/v1/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    listed = page.locator(".opblock").count()
    paths = page.locator(".opblock-summary-path").all_inner_texts()

    health = page.locator(".opblock-get", has=page.locator('[data-path="/v1/health"]'))
    health.locator(".opblock-summary").click()
    health.locator("button.try-out__btn").click()
    health.locator("button.execute").click()
    status = health.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=30_000)
    body = health.locator(".live-responses-table .microlight").first.inner_text()

    assert listed == operations
    assert {"/v1/health", "/v1/auth/login", "/v1/messages", "/v1/campaigns"} <= {p.replace("\u200b", "") for p in paths}
    assert status.inner_text().strip() == "200"
    assert json.loads(body) == {"status": "ok", "database": "ok"}
    assert refused == []  # it asked for nothing beyond the platform
