"""The gateway as browsers meet it from elsewhere, in a real headless Chromium (the Debian
package): a page served on another origin calls it across origins, and the API
reference pages render with nothing fetched from any other host.

The gateway stands in front of a scripted backend: what is tested is the browser's CORS
checks against the gateway's answers, not the models. Its summary stream sends three
tokens and then fails, so a stream that reached the page's script shows as three token
events and the gateway's error event, read across origins.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from switchyard.redis_server import LocalRedis
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, gateway_process
from tests.test_browser import CHROMIUM_ARGS, chromium_path

CORS_PAGE_DIR = Path(__file__).with_name("cors_page")
WAIT_MS = 60_000

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's bundle always shows Redocly's logo from its CDN: the page's policy blocks it (so
the browser reports a violation, and sends nothing), and ReDoc hides it."""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's output."""


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    """The origin of a small HTTP server serving ``cors_page/``, on its own port."""
    handler = functools.partial(QuietHandler, directory=str(CORS_PAGE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def gateway(
    scripted: ScriptedBackend, redis_server: LocalRedis, page_server: str
) -> Iterator[GatewayProcess]:
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    with gateway_process(
        backends, redis_url=redis_server.url, cors_origins=page_server, cache_ttl_s="0"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        context.close()


def test_a_page_on_another_origin_reads_the_rate_limit_and_a_summary_stream(
    page: Page, page_server: str, gateway: GatewayProcess, client_key: str
) -> None:
    assert page_server != gateway.url
    page.goto(f"{page_server}/index.html?gateway={gateway.url}&key={client_key}")
    expect(page.locator("#fetch-status")).to_have_text("200", timeout=WAIT_MS)
    expect(page.locator("#ratelimit")).to_contain_text('"burst";r=')
    expect(page.locator("#request-id")).to_have_text(re.compile(r"^[0-9a-f]{32}$"))
    expect(page.locator("#stream")).to_have_text(
        "3 tokens, then error event internal", timeout=WAIT_MS
    )


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        # Swagger UI: one block per operation; ReDoc: a heading per operation's summary.
        ("/docs", ".opblock"),
        ("/redoc", "h2:has-text('A single-use token that lets EventSource open one stream')"),
    ],
)
def test_the_api_reference_renders_with_nothing_from_another_host(
    page: Page, gateway: GatewayProcess, path: str, rendered: str
) -> None:
    elsewhere: list[str] = []
    problems: list[str] = []

    def only_the_gateway(route: Route) -> None:
        url = route.request.url
        if url.startswith((gateway.url + "/", "data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if REDOCLY_LOGO in message.text:
            return  # blocked by the page's policy, as it should be
        if "Content Security Policy" in message.text or message.type == "error":
            problems.append(message.text)

    page.route("**/*", only_the_gateway)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.goto(f"{gateway.url}{path}")
    expect(page.locator(rendered).first).to_be_visible(timeout=WAIT_MS)
    assert elsewhere == []
    assert problems == []
