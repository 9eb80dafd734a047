"""The page at ``/`` in a real headless Chromium, against a gateway in front of the real
classifier, NER and summarizer services.

The page is served with a strict Content-Security-Policy (no inline script, no eval), so
waits use Playwright's locator assertions and functions given as ``() => ...`` text, and
each test also checks that the page broke no policy and threw nothing.

Every model route needs an API key: the tests type the session's client key into the
page's ``#api-key`` field, and send it as ``Authorization: Bearer ...`` on their own calls.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
    sync_playwright,
)

from tests.support import GatewayProcess
from tests.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Generous: a loaded two-core machine runs the models, the gateway and the browser.
ANSWER_TIMEOUT_MS = 60_000
SUMMARY_TIMEOUT_MS = 120_000

POSITIVE = "I love this, it works perfectly"
# An emoji is one code point but two UTF-16 code units: every offset after it differs.
WITH_EMOJI = "🎉 Ada Lovelace moved to London."
ARTICLE = (
    "The city council met on Tuesday to discuss the new bicycle lanes. After a long debate, "
    "members voted to build twelve kilometres of protected lanes by next summer. Shop owners "
    "worried about parking, while cycling groups said the lanes would make commuting safer."
)
MAX_NEW_TOKENS = 24
# Well-formed (sy_<10 lowercase alnum>_<48 hex>) but never issued.
WRONG_KEY = "sy_wrongkey00_" + "ab" * 24
NO_KEY_MESSAGE = "enter an API key first"

# Enough tokens that the stream has many events after its first one.
RESUMED_MAX_NEW_TOKENS = 64

# Installed in the page before Run: every text the status line shows, in order.
RECORD_STATUSES = """() => {
  const statuses = [];
  window.statusesShown = statuses;
  const status = document.getElementById('status');
  const observer = new MutationObserver(() => statuses.push(status.textContent));
  observer.observe(status, { childList: true, characterData: true, subtree: true });
}"""

# Installed in the page before Run: one snapshot of the summary's length at every DOM
# change under #result or #status, each noting whether the status already said "done".
RECORD_SUMMARY_GROWTH = """() => {
  const snapshots = [];
  window.summarySnapshots = snapshots;
  const status = document.getElementById('status');
  const take = () => {
    const summary = document.getElementById('summary');
    snapshots.push({
      length: summary ? summary.textContent.length : -1,
      done: status.textContent === 'done',
    });
  };
  const observer = new MutationObserver(take);
  const watch = { childList: true, characterData: true, subtree: true };
  observer.observe(document.getElementById('result'), watch);
  observer.observe(status, watch);
}"""


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed (the test drives the Debian package, /usr/bin/chromium;"
            " install it with `apt-get install chromium`)"
        )
    return path


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


@contextmanager
def opened_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """The page at ``base_url``, freshly loaded, no API key typed in; afterwards, no
    policy violation and no uncaught error."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(ANSWER_TIMEOUT_MS)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    try:
        page.goto("/")
        expect(page.locator("#text")).not_to_have_value("")  # a sample text to start from
        yield page
        assert problems == []
    finally:
        context.close()


@pytest.fixture
def keyless_page(browser: Browser, gateway: GatewayProcess) -> Iterator[Page]:
    """The page straight from the gateway, no API key typed in."""
    with opened_page(browser, gateway.url) as page:
        yield page


@pytest.fixture
def page(keyless_page: Page, client_key: str) -> Page:
    """The page with the session's client key typed into its API key field."""
    keyless_page.fill("#api-key", client_key)
    return keyless_page


@pytest.fixture
def proxy(gateway: GatewayProcess) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the gateway, whose connections the test can drop."""
    with tcp_proxy(("127.0.0.1", gateway.port)) as proxy:
        yield proxy


@pytest.fixture
def proxied_page(browser: Browser, proxy: TcpProxy, client_key: str) -> Iterator[Page]:
    """The page loaded through ``proxy``, with the session's client key typed in."""
    with opened_page(browser, proxy.url) as page:
        page.fill("#api-key", client_key)
        yield page


def run(page: Page, model: str, text: str) -> None:
    page.select_option("#model", model)
    page.fill("#text", text)
    page.click("#run")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api(page: Page, path: str, text: str, key: str | None) -> dict[str, Any]:
    """The gateway's JSON answer to the same request the page sent (with ``key``, or with
    no credential at all when it is None)."""
    reply = page.request.post(
        path,
        data={"text": text},
        headers=bearer(key) if key is not None else {},
        fail_on_status_code=False,
    )
    return cast(dict[str, Any], reply.json())


def model_requests(page: Page) -> list[Request]:
    """Every request the page sends to a model route (under /v1/) from now on."""
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request) if "/v1/" in request.url else None)
    return sent


def token_events(stream: str) -> list[dict[str, Any]]:
    """The data of each ``token`` event of an SSE body (lines end in CRLF or LF)."""
    events = []
    for block in re.split(r"\r?\n\r?\n", stream):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == "token":
            events.append(cast(dict[str, Any], json.loads(fields["data"])))
    return events


def through_first_token(reply: bytes) -> int | None:
    """How much of a reply may pass: all of it until its first ``token`` event, then up to
    the blank line that ends that event (the event is dispatched, nothing after it is)."""
    start = reply.find(b"event: token")
    if start < 0:
        return None
    end = re.compile(rb"\r?\n\r?\n").search(reply, start)
    return None if end is None else end.end()


def test_the_classifier_shows_each_label_with_a_percentage_and_a_bar(
    page: Page, client_key: str
) -> None:
    run(page, "classify", POSITIVE)
    expect(page.locator("#status")).to_have_text("done", timeout=ANSWER_TIMEOUT_MS)

    answer = api(page, "/v1/classify", POSITIVE, client_key)
    labels = answer["results"][0]["labels"]
    rows = page.locator("#result .label-row")
    expect(rows).to_have_count(len(labels))
    expect(rows.first.locator(".label-name")).to_have_text("positive")
    expect(rows.locator(".label-name")).to_have_text([label["label"] for label in labels])
    for row, label in zip(rows.all(), labels, strict=True):
        shown = row.locator(".label-score").inner_text()
        assert re.fullmatch(r"\d{1,3}\.\d%", shown), shown
        assert abs(float(shown.rstrip("%")) - label["score"] * 100) <= 0.051
    top_bar = rows.first.locator(".bar-track .bar")
    expect(top_bar).to_be_visible()
    bar_width = top_bar.evaluate("(bar) => bar.getBoundingClientRect().width")
    track_width = rows.first.locator(".bar-track").evaluate(
        "(track) => track.getBoundingClientRect().width"
    )
    assert bar_width == pytest.approx(track_width * labels[0]["score"], abs=2)
    expect(page.locator("#version")).to_contain_text(answer["version"])
    expect(page.locator("#error")).to_be_hidden()


def test_ner_marks_each_entity_by_its_code_point_offsets(page: Page, client_key: str) -> None:
    run(page, "ner", WITH_EMOJI)
    expect(page.locator("#status")).to_have_text("done", timeout=ANSWER_TIMEOUT_MS)

    answer = api(page, "/v1/ner", WITH_EMOJI, client_key)
    entities = sorted(answer["results"][0]["entities"], key=lambda e: e["start"])
    # Python indexes str by code points, as the API's offsets count.
    expected = [WITH_EMOJI[e["start"] : e["end"]] for e in entities]
    assert expected == [e["text"] for e in entities]
    assert "London" in expected
    assert any("Ada Lovelace" in text for text in expected), expected

    marks = page.locator("#result mark.entity")
    expect(marks).to_have_text(expected)
    for mark, entity in zip(marks.all(), entities, strict=True):
        expect(mark).to_have_class(re.compile(rf"\bentity-{entity['label']}\b"))
        expect(mark).to_have_attribute("data-label", entity["label"])
    # Marks and the text between them give back the whole text, nothing lost or doubled.
    expect(page.locator("#result .ner-text")).to_have_text(WITH_EMOJI)
    expect(page.locator("#version")).to_contain_text(answer["version"])


def test_the_summary_grows_token_by_token_until_done(page: Page, client_key: str) -> None:
    page.select_option("#model", "summarize")
    page.fill("#max-new-tokens", str(MAX_NEW_TOKENS))
    page.fill("#text", ARTICLE)
    page.evaluate(RECORD_SUMMARY_GROWTH)
    sent = model_requests(page)
    page.click("#run")
    expect(page.locator("#status")).to_have_text("done", timeout=SUMMARY_TIMEOUT_MS)

    # The key went in a header, for a single-use stream token; the stream's URL carries
    # only that token, never the key.
    assert [(r.method, r.url.split("?")[0].removeprefix(page.url.rstrip("/"))) for r in sent] == [
        ("POST", "/v1/summarize/stream-token"),
        ("GET", "/v1/summarize/stream"),
    ]
    assert sent[0].headers.get("authorization") == f"Bearer {client_key}"
    assert re.search(r"[?&]stream_token=sst_", sent[1].url), sent[1].url
    assert client_key not in sent[1].url

    snapshots = cast(list[dict[str, Any]], page.evaluate("() => window.summarySnapshots"))
    first_done = next(i for i, s in enumerate(snapshots) if s["done"])
    before_done = [s["length"] for s in snapshots[:first_done] if s["length"] > 0]
    assert before_done == sorted(before_done), f"the summary only ever grows: {snapshots}"
    assert len(set(before_done)) >= 3, f"the summary grew in too few steps: {snapshots}"

    summary = page.locator("#summary").text_content() or ""
    assert len(summary) == max(before_done), "nothing was added to the summary after done"
    assert summary.strip()
    expect(page.locator("#ttft")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#usage-server-ttft")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#usage-generated-tokens")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#usage-finish-reason")).to_have_text(re.compile(r"^(stop|length)$"))
    expect(page.locator("#version")).to_contain_text("summarizer")
    expect(page.locator("#error")).to_be_hidden()

    # Greedy decoding repeats itself: the page shows exactly the tokens the stream sends.
    reply = page.request.get(
        "/v1/summarize/stream",
        params={"text": ARTICLE, "max_new_tokens": MAX_NEW_TOKENS},
        headers=bearer(client_key),
        timeout=SUMMARY_TIMEOUT_MS,
    )
    assert summary == "".join(event["text"] for event in token_events(reply.text()))


@pytest.mark.timeout(300)
def test_the_summary_resumes_by_itself_after_the_connection_drops(
    proxied_page: Page, proxy: TcpProxy, gateway: GatewayProcess, client_key: str
) -> None:
    page = proxied_page
    page.select_option("#model", "summarize")
    page.fill("#max-new-tokens", str(RESUMED_MAX_NEW_TOKENS))
    page.fill("#text", ARTICLE)
    page.evaluate(RECORD_STATUSES)
    sent = model_requests(page)
    # However fast the model, the drop comes mid-stream: the proxy lets the stream's first
    # token event through and holds back the rest of the answer (the generation runs on
    # in the gateway, its events kept for replay), so the page has shown exactly one
    # token when its connection drops, and the gateway has more for its reconnect.
    proxy.hold_replies(through_first_token)
    page.click("#run")
    expect(page.locator("#status")).to_have_text("Streaming…", timeout=SUMMARY_TIMEOUT_MS)
    first_token = page.locator("#summary").text_content() or ""

    assert proxy.drop_all() >= 1
    expect(page.locator("#status")).to_have_text("done", timeout=SUMMARY_TIMEOUT_MS)

    # The same generation, no gap and no duplicate: greedy decoding repeats itself, so the
    # page shows exactly the summary of a one-shot request with the same options.
    whole = page.request.post(
        "/v1/summarize",
        data={"text": ARTICLE, "max_new_tokens": RESUMED_MAX_NEW_TOKENS},
        headers=bearer(client_key),
        timeout=SUMMARY_TIMEOUT_MS,
    ).json()["summary"]
    assert first_token and whole.startswith(first_token) and len(whole) > len(first_token)
    expect(page.locator("#summary")).to_have_text(whole)
    expect(page.locator("#error")).to_be_hidden()
    statuses = cast(list[str], page.evaluate("() => window.statusesShown"))
    assert "Reconnecting…" in statuses[statuses.index("Streaming…") :], statuses
    assert statuses[-1] == "done", statuses

    # EventSource sent the same URL again, with the first event's id, and the gateway
    # answered it with the rest of the stream.
    paths = [(r.method, r.url.split("?")[0].removeprefix(proxy.url)) for r in sent]
    assert paths == [
        ("POST", "/v1/summarize/stream-token"),
        ("GET", "/v1/summarize/stream"),
        ("GET", "/v1/summarize/stream"),
    ]
    opened, reconnect = sent[1], sent[2]
    assert reconnect.url == opened.url
    assert re.fullmatch(r"gen_[\w-]+\.0", reconnect.header_value("last-event-id") or "")
    resumed = reconnect.response()
    assert resumed is not None and resumed.status == 200
    request_id = resumed.header_value("x-request-id")
    logged = gateway.wait_log(lambda r: r.get("request_id") == request_id and "status" in r)
    assert logged["message"] == "GET /v1/summarize/stream?<masked> 200"


def test_errors_are_shown_with_the_gateway_message(page: Page, client_key: str) -> None:
    too_long = "word " * 1000  # over every model's limit, and the query string's 4096

    run(page, "classify", too_long)
    expect(page.locator("#status")).to_have_text("error", timeout=ANSWER_TIMEOUT_MS)
    answer = api(page, "/v1/classify", too_long, client_key)
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text(answer["error"]["message"])

    run(page, "summarize", too_long)  # EventSource sees only a failed connection
    expect(page.locator("#error")).to_contain_text("at most 4096 characters")
    expect(page.locator("#status")).to_have_text("error")

    run(page, "classify", "   ")
    expect(page.locator("#error")).to_contain_text("enter some text")


def test_without_a_key_the_page_asks_for_one_and_sends_nothing(
    keyless_page: Page, client_key: str
) -> None:
    page = keyless_page
    # What the page spares itself: the gateway's 401 to a model request without a key.
    refused = page.request.post("/v1/classify", data={"text": POSITIVE}, fail_on_status_code=False)
    assert refused.status == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "unauthenticated"

    sent = model_requests(page)
    for model in ("classify", "ner", "summarize"):
        run(page, model, POSITIVE)
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator("#error")).to_contain_text(NO_KEY_MESSAGE)
        expect(page.locator("#status")).to_have_text("error")
        expect(page.locator("#api-key")).to_be_focused()
        expect(page.locator("#result")).to_be_empty()
    page.fill("#api-key", "   ")  # blank is no key either
    run(page, "classify", POSITIVE)
    expect(page.locator("#error")).to_contain_text(NO_KEY_MESSAGE)
    assert sent == []

    # With the key typed in, the same page runs.
    page.fill("#api-key", client_key)
    run(page, "classify", POSITIVE)
    expect(page.locator("#status")).to_have_text("done", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#error")).to_be_hidden()


@pytest.mark.parametrize("key", [WRONG_KEY, "not-a-key"], ids=["unknown", "malformed"])
def test_a_wrong_key_shows_the_gateways_401_message(keyless_page: Page, key: str) -> None:
    page = keyless_page
    page.fill("#api-key", key)
    answer = api(page, "/v1/classify", POSITIVE, key)
    assert answer["error"]["code"] == "unauthenticated"
    message = answer["error"]["message"]

    run(page, "classify", POSITIVE)
    expect(page.locator("#status")).to_have_text("error", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#error")).to_contain_text(message)
    expect(page.locator("#error")).to_contain_text("unauthenticated, HTTP 401")
    expect(page.locator("#error .request-id")).to_be_visible()
    expect(page.locator("#result .label-row")).to_have_count(0)

    # The summarizer is refused its stream token, and so never opens a stream.
    sent = model_requests(page)
    run(page, "summarize", ARTICLE)
    expect(page.locator("#status")).to_have_text("error", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#error")).to_contain_text(message)
    expect(page.locator("#error")).to_contain_text("unauthenticated, HTTP 401")
    expect(page.locator("#summary")).to_have_count(0)
    assert [r.url.split("?")[0].rsplit("/", 1)[-1] for r in sent] == ["stream-token"]


def test_a_refused_stream_token_is_explained_by_asking_again_with_the_key(
    page: Page, client_key: str
) -> None:
    """A stream token is single-use: the page's second look at a refused stream (to read
    why) cannot reuse it, and asks with the key in a header instead."""
    # A token the gateway never issued (as a used or expired one): the stream GET is 401.
    page.route(
        "**/v1/summarize/stream-token",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"stream_token": "sst_" + "00" * 24, "expires_in_s": 60}),
        ),
    )

    def refused(response: Response) -> bool:
        return "/v1/summarize/stream?" in response.url and "stream_token=" in response.url

    def asked_again(response: Response) -> bool:
        return "/v1/summarize/stream?" in response.url and "stream_token=" not in response.url

    page.select_option("#model", "summarize")
    page.fill("#max-new-tokens", "2")
    with page.expect_response(refused) as first, page.expect_response(asked_again) as second:
        run(page, "summarize", ARTICLE)
    assert first.value.status == 401
    assert second.value.request.headers.get("authorization") == f"Bearer {client_key}"
    # The key alone opens the stream: what refused it was the token, so the page says
    # to run again (and stops the stream it opened only to look).
    assert second.value.status == 200
    expect(page.locator("#error")).to_contain_text("closed before it started")
    expect(page.locator("#status")).to_have_text("error")


def test_the_key_is_a_password_field_kept_in_this_tab_only(
    keyless_page: Page, client_key: str
) -> None:
    page = keyless_page
    field = page.get_by_label("API key")
    expect(field).to_have_attribute("type", "password")
    expect(page.locator("#api-key-hint")).to_contain_text("kept in this tab only (sessionStorage)")
    expect(field).to_have_value("")

    field.fill(client_key)
    page.reload()
    expect(page.locator("#api-key")).to_have_value(client_key)
    # Another tab of the same browser has its own sessionStorage: no key there.
    other = page.context.new_page()
    other.goto("/")
    expect(other.locator("#text")).not_to_have_value("")
    expect(other.locator("#api-key")).to_have_value("")
    other.close()

    # Cleared, it is forgotten.
    page.fill("#api-key", "")
    page.reload()
    expect(page.locator("#api-key")).to_have_value("")
