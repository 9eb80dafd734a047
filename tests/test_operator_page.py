"""The operator dashboard: the page at ``/operator`` and the stream it reads,
``GET /v1/admin/live``, against a real gateway process and Redis in front of two scripted
classifier backends (``sentiment`` ``v1`` on one, ``v2`` on the other), which a test can
make fail so that a guardrail rolls the canary back.

The browser tests drive Debian's Chromium as tests/test_browser.py does; waits are on the
page's state (Playwright's assertions), never on sleeps.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from gateway.routes.page import PAGE_POLICY
from switchyard.redis_server import LocalRedis, local_redis
from tests.conftest import make_key
from tests.scripted_backend import Script, ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, free_port, gateway_process
from tests.tcp_proxy import tcp_proxy
from tests.test_browser import CHROMIUM_ARGS, chromium_path

SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
PAGE_TIMEOUT_MS = 60_000
OPERATOR_ASSETS = (
    "operator.js",
    "operator-actions.js",
    "operator-charts.js",
    "operator-dom.js",
    "operator-view.js",
    "operator.css",
)
TRAFFIC_ROUNDS = 100
"""Most rounds of 20 requests sent to provoke a guardrail rollback."""


@dataclass
class Rig:
    redis: LocalRedis
    stable: ScriptedBackend
    canary: ScriptedBackend
    backends: dict[str, str]
    settings: dict[str, str]
    gateway: GatewayProcess
    operator_key: str
    client_key: str

    def op(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.operator_key}"}
        url = f"{self.gateway.url}/v1/admin{path}"
        return httpx.request(method, url, headers=headers, timeout=30, **kwargs)

    def classify(self, subject: str) -> httpx.Response:
        claims = {
            "sub": subject,
            "iss": "switchyard",
            "aud": "switchyard-gateway",
            "exp": int(time.time()) + 3600,
            "roles": ["client"],
            "tier": "enterprise",
        }
        bearer = jwt.encode(claims, SECRET, algorithm="HS256")
        return httpx.post(
            f"{self.gateway.url}/v1/classify",
            json={"text": "x"},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=30,
        )


def key_of(redis_url: str, role: str) -> str:
    """A new key with ``role``, made in a thread of its own: with Playwright's sync API
    running, this thread has an event loop already."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make_key, redis_url, role, "enterprise").result()


@contextmanager
def operator_rig(tmp_path: Path, **extra: str) -> Iterator[Rig]:
    with ExitStack() as stack:
        redis = stack.enter_context(local_redis(tmp_path / "redis", free_port()))
        stable = stack.enter_context(
            scripted_backend(Script(model="sentiment", versions=("v1",), label="calm"))
        )
        canary = stack.enter_context(
            scripted_backend(Script(model="sentiment", versions=("v2",), label="bold"))
        )
        backends = {
            "classifier": f"{stable.address},{canary.address}",
            "ner": stable.address,
            "summarizer": stable.address,
        }
        settings = {
            "redis_url": redis.url,
            "jwt_hs256_secret": SECRET,
            "cache_ttl_s": "0",
            "routing_follow_s": "0.2",
            "guardrail_interval_s": "0.2",
            "models_refresh_s": "0.5",
            "live_bucket_s": "1",
            "operator_push_s": "0.5",
            **extra,
        }
        gateway = stack.enter_context(gateway_process(backends, **settings))
        yield Rig(
            redis,
            stable,
            canary,
            backends,
            settings,
            gateway,
            key_of(redis.url, "operator"),
            key_of(redis.url, "client"),
        )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with operator_rig(tmp_path) as made:
        yield made


def sse_events(reply: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of each event of a streamed answer, as they arrive."""
    name, data = "message", list[str]()
    for line in reply.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def snapshots(reply: httpx.Response) -> Iterator[dict[str, Any]]:
    for name, data in sse_events(reply):
        assert name == "snapshot", data
        yield data


def model_in(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in snapshot["models"] if m["model"] == name)
    return found


def start_guarded_canary(rig: Rig, weight: float) -> dict[str, Any]:
    # Judged on errors alone: scripted latency on a loaded machine is noise.
    guardrails = {
        "min_samples": 20,
        "max_error_rate_delta": 0.1,
        "max_p95_ratio": 1000.0,
        "warmup_s": 0,
    }
    body = {"canary": "v2", "weight": weight, "guardrails": guardrails, "reason": "try v2"}
    reply = rig.op("POST", "/rollouts/sentiment/start", json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def drive_until_rolled_back(rig: Rig) -> None:
    """Traffic from many callers until the guardrail has set the canary's weight to 0."""
    for round_number in range(TRAFFIC_ROUNDS):
        for n in range(20):
            rig.classify(f"user-{round_number}-{n}")
        versions = rig.op("GET", "/rollouts/sentiment").json()["rollout"]["versions"]
        if next(v for v in versions if v["version"] == "v2")["weight"] == 0:
            return
    raise AssertionError("the guardrail never rolled the canary back")


# ---- the page and the stream over HTTP ----------------------------------------------


def test_the_page_loads_without_a_key_under_a_strict_policy(rig: Rig) -> None:
    page = httpx.get(f"{rig.gateway.url}/operator", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert "'unsafe-inline'" not in PAGE_POLICY and "connect-src 'self'" in PAGE_POLICY
    assert '<script type="module" src="/static/operator.js"></script>' in page.text
    assert "<style" not in page.text and " style=" not in page.text
    for asset in OPERATOR_ASSETS:
        served = httpx.get(f"{rig.gateway.url}/static/{asset}", timeout=30)
        assert served.status_code == 200
        if asset.endswith(".js"):  # browsers run modules only with a JavaScript type
            assert served.headers["content-type"].startswith("text/javascript")


def test_the_stream_needs_an_operator(rig: Rig) -> None:
    url = f"{rig.gateway.url}/v1/admin/live"
    refused = httpx.get(url, timeout=30)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    client = httpx.get(url, headers={"Authorization": f"Bearer {rig.client_key}"}, timeout=30)
    assert client.status_code == 403
    assert client.json()["error"]["code"] == "permission_denied"


def test_the_stream_pushes_each_models_versions_and_routing_changes(rig: Rig) -> None:
    headers = {"X-API-Key": rig.operator_key}
    url = f"{rig.gateway.url}/v1/admin/live"
    with httpx.stream("GET", url, headers=headers, timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        pushed = snapshots(reply)
        first = next(pushed)
        sentiment = model_in(first, "sentiment")
        assert sentiment["service"] == "classifier"
        assert sentiment["rollout"] is None
        assert {v["version"] for v in sentiment["hosted"]} == {"v1", "v2"}
        assert sentiment["experiments"]["results"] == []
        assert first["push_s"] == 0.5

        started = start_guarded_canary(rig, 30)
        # The change is pushed, with the same status the rollout route answers.
        for snapshot in pushed:
            sentiment = model_in(snapshot, "sentiment")
            if sentiment["rollout"] is not None:
                break
        assert sentiment["routing_revision"] >= started["routing_revision"]
        routes = {v["version"]: (v["state"], v["weight"]) for v in sentiment["rollout"]["versions"]}
        assert routes == {"v1": ("stable", 0.0), "v2": ("canary", 30.0)}
        assert set(sentiment["live"]) == {"v1", "v2"}
        assert [e["action"] for e in sentiment["audit"]] == ["start"]
        assert sentiment["audit"][0]["reason"] == "try v2"

        # Live figures arrive as traffic is counted (every replica's, through Redis).
        for n in range(10):
            assert rig.classify(f"caller-{n}").status_code == 200
        for snapshot in pushed:
            live = model_in(snapshot, "sentiment")["live"]
            if live["v1"]["requests"] + live["v2"]["requests"] >= 10:
                break
        shown = {v: live[v]["labels"] for v in ("v1", "v2") if live[v]["requests"]}
        assert shown and all(labels == {"calm" if v == "v1" else "bold": 1.0}
                             for v, labels in shown.items())  # fmt: skip
        request_id = reply.headers["x-request-id"]
    # The client left: the gateway ends the stream (and logs the request as done).
    logged = rig.gateway.wait_log(lambda r: r.get("request_id") == request_id and "status" in r)
    assert str(logged["message"]).startswith("GET /v1/admin/live ")


def test_a_draining_gateway_ends_the_stream_with_an_error_event(rig: Rig) -> None:
    with gateway_process(rig.backends, **rig.settings) as gateway:
        headers = {"Authorization": f"Bearer {rig.operator_key}"}
        with httpx.stream(
            "GET", f"{gateway.url}/v1/admin/live", headers=headers, timeout=60
        ) as reply:
            events = sse_events(reply)
            assert next(events)[0] == "snapshot"
            gateway.process.send_signal(signal.SIGTERM)
            rest = list(events)  # ends: the gateway closes the stream as it drains
        assert rest, "no event after the drain began"
        name, data = rest[-1]
        assert name == "error"
        assert data["error"]["code"] == "unavailable"
        assert data["error"]["final"] is True
        assert all(n == "snapshot" for n, _ in rest[:-1])
        assert gateway.process.wait(timeout=120) == 0


def test_the_stream_says_when_redis_does_not_answer_and_carries_on(rig: Rig) -> None:
    headers = {"Authorization": f"Bearer {rig.operator_key}"}
    url = f"{rig.gateway.url}/v1/admin/live"
    with httpx.stream("GET", url, headers=headers, timeout=60) as reply:
        events = sse_events(reply)
        assert next(events)[0] == "snapshot"
        rig.redis.stop()
        data = next(d for n, d in events if n == "error")
        assert data["error"]["code"] == "unavailable"
        assert data["error"]["final"] is False
        assert next(events)[0] in ("snapshot", "error")  # the stream goes on


def test_a_revoked_key_stops_the_stream(rig: Rig) -> None:
    admin = key_of(rig.settings["redis_url"], "admin")
    headers = {"Authorization": f"Bearer {rig.operator_key}"}
    with httpx.stream(
        "GET", f"{rig.gateway.url}/v1/admin/live", headers=headers, timeout=60
    ) as reply:
        events = sse_events(reply)
        assert next(events)[0] == "snapshot"
        key_id = rig.operator_key.split("_")[1]
        revoked = httpx.delete(
            f"{rig.gateway.url}/v1/admin/keys/{key_id}",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        assert revoked.status_code == 204
        rest = list(events)  # ends: the key no longer opens the figures
    name, data = rest[-1]
    assert name == "error"
    assert data["error"]["code"] == "unauthenticated"
    assert data["error"]["final"] is True


# ---- the page in Chromium -------------------------------------------------------------


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
def opened_dashboard(browser: Browser, base_url: str) -> Iterator[Page]:
    """The dashboard at ``base_url``, loaded, no key typed in; afterwards, no policy
    broken, nothing thrown."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    try:
        page.goto("/operator")
        yield page
        assert problems == []
    finally:
        context.close()


@pytest.fixture
def dashboard(browser: Browser, rig: Rig) -> Iterator[Page]:
    with opened_dashboard(browser, rig.gateway.url) as page:
        yield page


def version_row(page: Page, version: str) -> Any:
    return page.locator(
        f'section[data-model="sentiment"] table.versions tr[data-version="{version}"]'
    )


def confirm(page: Page) -> None:
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-ok")
    expect(page.locator("#confirm")).to_be_hidden()


def test_a_client_key_is_refused_with_the_gateways_message(dashboard: Page, rig: Rig) -> None:
    page = dashboard
    page.fill("#api-key", rig.client_key)
    page.click("#connect")
    expect(page.locator("#error")).to_contain_text("permission_denied, HTTP 403")
    expect(page.locator("#connection")).to_have_text("Refused")
    expect(page.locator("section.model")).to_have_count(0)


def test_the_dashboard_follows_a_guardrail_rollback_and_an_operators_pause(
    dashboard: Page, rig: Rig
) -> None:
    page = dashboard
    page.fill("#api-key", rig.operator_key)
    page.click("#connect")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(version_row(page, "v1")).to_be_visible()
    expect(version_row(page, "v2")).to_be_visible()
    expect(version_row(page, "v1").locator(".state")).to_have_text("default")
    # Whatever follows must reach this same page, never a reload of it.
    page.evaluate("() => { window.sameDocument = true; }")

    start_guarded_canary(rig, 50)
    expect(version_row(page, "v2").locator(".state")).to_have_text("canary")
    expect(version_row(page, "v2").locator(".weight")).to_have_text("50%")
    expect(version_row(page, "v1").locator(".state")).to_have_text("stable")
    section = page.locator('section[data-model="sentiment"]')
    expect(section.locator('.audit-entry[data-action="start"]')).to_be_visible()

    # An operator's pause, confirmed in the dialog, shows as the gateway pushes it.
    section.locator('button[data-action="pause"]').click()
    expect(page.locator("#confirm-message")).to_contain_text("Pause")
    page.fill("#confirm-reason", "looking into it")
    page.press("#confirm-reason", "Enter")  # Enter confirms, as the button does
    expect(page.locator("#confirm")).to_be_hidden()
    expect(section.locator(".badge.paused")).to_be_visible()
    paused = section.locator('.audit-entry[data-action="pause"]')
    expect(paused).to_contain_text("looking into it")
    expect(section.locator('button[data-action="resume"]')).to_be_visible()

    # A cancelled action sends nothing; a refused one shows the gateway's message.
    section.locator('button[data-action="resume"]').click()
    page.click("#confirm-cancel")
    expect(section.locator(".badge.paused")).to_be_visible()
    section.locator('button[data-action="weight"]').click()
    page.fill("#confirm-weight", "150")
    confirm(page)
    expect(page.locator("#error")).to_contain_text("invalid_argument, HTTP 400")
    expect(version_row(page, "v2").locator(".weight")).to_have_text("50%")

    section.locator('button[data-action="resume"]').click()
    confirm(page)
    expect(section.locator(".badge.paused")).to_have_count(0)

    # Figures per version, side by side, with their charts.
    for n in range(10):
        assert rig.classify(f"watcher-{n}").status_code == 200
    requests = section.locator('table.figures tr[data-metric="requests"] td[data-version="v1"]')
    expect(requests).not_to_have_text("0 (0)")
    expect(section.locator('figure.chart[data-metric="requests"] polyline').first).to_be_attached()

    # The canary fails; the guardrail rolls it back, and the page shows it by itself.
    rig.canary.script.classify_code = grpc.StatusCode.INTERNAL
    drive_until_rolled_back(rig)
    rollback = section.locator('.audit-entry[data-action="rollback"]')
    expect(rollback).to_be_visible()
    expect(rollback.locator(".audit-actor")).to_have_text("guardrail")
    expect(rollback).to_contain_text("error rate")
    expect(version_row(page, "v2").locator(".weight")).to_have_text("0%")
    expect(section.locator(".badge.paused")).to_be_visible()
    errors = section.locator('table.figures tr[data-metric="errors"] td[data-version="v2"]')
    expect(errors).to_contain_text("500")
    assert page.evaluate("() => window.sameDocument") is True


# Installed in the page: every text the connection status shows, in order.
RECORD_CONNECTION = """() => {
  const shown = [];
  window.connectionShown = shown;
  const status = document.getElementById('connection');
  new MutationObserver(() => shown.push(status.textContent)).observe(
    status, { childList: true, characterData: true, subtree: true });
}"""


def test_the_dashboard_reconnects_by_itself_after_the_stream_drops(
    browser: Browser, rig: Rig
) -> None:
    with (
        tcp_proxy(("127.0.0.1", rig.gateway.port)) as proxy,
        opened_dashboard(browser, proxy.url) as page,
    ):
        page.fill("#api-key", rig.operator_key)
        page.click("#connect")
        expect(page.locator("#connection")).to_have_text("Live")
        expect(version_row(page, "v2")).to_be_visible()
        page.evaluate(RECORD_CONNECTION)

        assert proxy.drop_all() >= 1
        start_guarded_canary(rig, 20)  # shown only through a new stream
        expect(version_row(page, "v2").locator(".weight")).to_have_text("20%")
        expect(page.locator("#connection")).to_have_text("Live")
        shown = page.evaluate("() => window.connectionShown")
        assert any("reconnecting in" in text for text in shown), shown


SHADOWED = {
    "at": 1767350000.0,
    "routing_revision": 4,
    "push_s": 1.0,
    "models": [
        {
            "model": "sentiment",
            "service": "classifier",
            "rollout": {
                "model": "sentiment",
                "revision": 4,
                "paused": False,
                "versions": [
                    {"version": "v1", "state": "stable", "weight": 0},
                    {"version": "v2", "state": "canary", "weight": 10},
                ],
            },
            "routing_revision": 4,
            "live": {},
            "guardrails": {},
            "hosted": [],
            "shadow": {
                "version": "v3",
                "share": 0.25,
                "agreement": {
                    "kind": "top_label",
                    "n": 400,
                    "value": 0.97,
                    "low": 0.95,
                    "high": 0.98,
                    "stable_latency_ms": 12.0,
                    "shadow_latency_ms": 30.0,
                    "failed": 3,
                    "dropped": 1,
                },
            },
            "experiments": {
                "model": "sentiment",
                "baseline": "v1",
                "results": [
                    {
                        "version": "v1",
                        "kind": "rate",
                        "n": 200,
                        "estimate": 0.5,
                        "low": 0.43,
                        "high": 0.57,
                        "shares": {},
                        "baseline": True,
                        "comparison": None,
                        "note": "",
                    },
                    {
                        "version": "v2",
                        "kind": "rate",
                        "n": 180,
                        "estimate": 0.61,
                        "low": 0.54,
                        "high": 0.68,
                        "shares": {},
                        "baseline": False,
                        "comparison": {"test": "z", "statistic": 2.1, "p_value": 0.031},
                        "note": "",
                    },
                ],
            },
            "audit": [],
        }
    ],
}


def test_shadow_agreement_and_experiment_results_are_shown_per_version(
    dashboard: Page, rig: Rig
) -> None:
    """A snapshot's ``shadow`` and ``experiments`` as the page renders them (the stream
    stands in for a gateway whose shadow is running)."""
    page = dashboard
    body = f"event: snapshot\r\nid: 0\r\ndata: {json.dumps(SHADOWED)}\r\n\r\n"
    page.route(
        "**/v1/admin/live",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body),
    )
    page.fill("#api-key", rig.operator_key)
    page.click("#connect")
    section = page.locator('section[data-model="sentiment"]')
    expect(section.locator(".badge.shadow")).to_have_text("shadow: v3 (25%)")
    shadow = section.locator('tr[data-metric="shadow"] td[data-version="v3"]')
    expect(shadow).to_contain_text("top_label 0.97 [0.95, 0.98] over 400")
    expect(shadow).to_contain_text("3 failed")
    expect(shadow).to_contain_text("latency 30 ms vs 12 ms")
    outcomes = section.locator('tr[data-metric="experiment-rate"]')
    expect(outcomes.locator('td[data-version="v2"]')).to_contain_text("0.61 [0.54, 0.68] (n 180)")
    expect(outcomes.locator('td[data-version="v2"]')).to_contain_text("p 0.031")
    expect(outcomes.locator('td[data-version="v1"]')).to_contain_text("baseline")
    expect(version_row(page, "v2").locator(".weight")).to_have_text("10%")
    expect(version_row(page, "v1").locator(".weight")).to_have_text("90% (the rest)")
