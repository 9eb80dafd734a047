"""Shadow traffic: the comparisons on fixed inputs with known answers, the agreement
counters in memory and in a real Redis, and gateways in front of scripted classifier
backends (stable ``v1`` and shadow ``v2``: a shadow made slow, failing, or disagreeing on
cue) showing that callers get stable's answers whatever the shadow does, and that the
agreement, failures and drops are counted exactly, for every replica.

Waits are on states (the status endpoint, the metrics) with a deadline, never on sleeps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio as redis

from gateway.routing.significance import wilson
from gateway.routing.table import Rollout, Shadow, VersionRoute
from gateway.shadow.agreement import ShadowAgreement
from gateway.shadow.compare import entity_f1, label_comparison, lcs_length, length_ratio, rouge_l
from gateway.shadow.figures import agreement_figures, mean_interval
from gateway.shadow.mirror import shadow_for
from switchyard.redis_server import LocalRedis, local_redis
from tests.scripted_backend import Script, ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, free_port, gateway_process
from tests.test_rollouts import OPERATOR, SECRET, token

WAIT_S = 60.0
METRIC = "switchyard_gateway_shadow_requests_total"

# --- comparisons and figures -------------------------------------------------------------


def test_entity_f1_matches_start_end_and_label_exactly() -> None:
    stable = [(0, 5, "PER"), (10, 16, "LOC")]
    shadow = [(0, 5, "PER"), (10, 16, "ORG"), (20, 25, "LOC")]
    # One match: precision 1/3, recall 1/2, F1 = 2 * (1/6) / (5/6) = 0.4.
    assert entity_f1(stable, shadow) == pytest.approx(0.4)
    assert entity_f1(stable, stable) == 1.0
    assert entity_f1([], []) == 1.0
    assert entity_f1(stable, []) == 0.0
    assert entity_f1([], stable) == 0.0
    assert entity_f1([(0, 5, "PER")], [(0, 4, "PER")]) == 0.0  # a boundary off is a miss


def test_rouge_l_is_the_f_measure_of_the_longest_common_subsequence() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    # LCS "the cat on the mat": 5 of 6 tokens on both sides.
    assert rouge_l("the cat sat on the mat", "the cat was on the mat") == pytest.approx(5 / 6)
    # LCS 2: precision 2/2, recall 2/4, F = 2/3.
    assert rouge_l("a b c d", "b d") == pytest.approx(2 / 3)
    assert rouge_l("a b", "c d") == 0.0
    assert rouge_l("", "") == 1.0
    assert rouge_l("same words", "  same   words ") == 1.0
    assert length_ratio("a b c d", "a b") == 0.5
    assert length_ratio("", "a b") == 2.0


def test_labels_agree_on_the_top_label_and_differ_by_stables_score() -> None:
    assert label_comparison("positive", 0.9, {"positive": 0.6, "negative": 0.4}) == pytest.approx(
        (True, 0.3)
    )
    assert label_comparison("positive", 0.9, {"negative": 0.7, "positive": 0.3}) == pytest.approx(
        (False, 0.6)
    )
    assert label_comparison("positive", 0.8, {"negative": 1.0}) == pytest.approx((False, 0.8))


def test_agreement_figures_of_3_in_4_labels_and_of_mean_scores() -> None:
    labels = agreement_figures("labels", {"n": 4, "agree": 3, "score_diff": 1.0})
    low, high = wilson(3, 4)
    assert (low, high) == pytest.approx((0.30064, 0.95441), abs=1e-5)
    assert labels["value"] == 0.75
    assert (labels["low"], labels["high"]) == (low, high)
    assert labels["mean_score_diff"] == 0.25
    assert labels["failed"] == labels["dropped"] == 0
    # Scores 0.4, 0.6, 0.8: mean 0.6, sd 0.2, t(0.975, 2) = 4.3027.
    text = agreement_figures("text", {"n": 3, "sum": 1.8, "sumsq": 1.16, "ratio": 3.3})
    assert text["value"] == pytest.approx(0.6)
    assert text["low"] == pytest.approx(0.6 - 4.302653 * 0.2 / 3**0.5, abs=1e-5)
    assert text["high"] == 1.0  # clipped
    assert text["length_ratio"] == pytest.approx(1.1)
    assert mean_interval(0.9, 0.81, 1) == (None, None)
    empty = agreement_figures("entities", {})
    assert (empty["n"], empty["value"], empty["low"], empty["stable_latency_ms"]) == (
        0,
        None,
        None,
        None,
    )


def test_only_stables_own_requests_are_mirrored_by_a_draw_under_the_share() -> None:
    table = Rollout(
        model="m",
        salt="s",
        versions=[
            VersionRoute(version="v1", state="stable"),
            VersionRoute(version="v3", state="canary", weight=10),
        ],
        shadow=Shadow(version="v2", share=25),
    )
    assert shadow_for(table, "stable", "v1", 0.24) == Shadow(version="v2", share=25)
    assert shadow_for(table, "stable", "v1", 0.25) is None
    for reason in ("pinned", "allowlist", "canary"):
        assert shadow_for(table, reason, "v1", 0.0) is None
    assert shadow_for(table, "stable", "v3", 0.0) is None  # not answered by stable
    assert shadow_for(table.model_copy(update={"shadow": None}), "stable", "v1", 0.0) is None
    with pytest.raises(ValueError, match="cannot shadow"):
        Rollout.model_validate(table.model_dump() | {"shadow": {"version": "v1", "share": 5}})


@pytest.fixture(params=["memory", "redis"])
async def agreement(request: pytest.FixtureRequest, client: redis.Redis) -> ShadowAgreement:
    if request.param == "memory":
        return ShadowAgreement(None)
    # A prefix of its own: the session's Redis is shared by other tests.
    return ShadowAgreement(client, prefix=f"test-shadow-{uuid.uuid4().hex}:")


async def test_agreement_counts_add_up_before_and_after_a_flush_and_reset(
    agreement: ShadowAgreement,
) -> None:
    pair = ("sentiment", "v1", "v2")
    other = ("sentiment", "v1", "v3")
    agreement.record(pair, {"n": 2, "agree": 1})
    assert await agreement.counts(pair) == {"n": 2, "agree": 1}
    await agreement.flush()
    agreement.record(pair, {"n": 1, "agree": 1, "failed": 1})
    agreement.record(other, {"dropped": 1})
    assert await agreement.counts(pair) == {"n": 3, "agree": 2, "failed": 1}
    await agreement.flush()
    assert await agreement.counts(pair) == {"n": 3, "agree": 2, "failed": 1}
    await agreement.reset(pair)
    assert await agreement.counts(pair) == {}
    assert await agreement.counts(other) == {"dropped": 1}


# --- through gateways --------------------------------------------------------------------


@dataclass
class ShadowSystem:
    stable: ScriptedBackend
    shadow: ScriptedBackend
    replicas: list[GatewayProcess]

    def op(self, method: str, path: str, replica: int = 0, **kwargs: Any) -> httpx.Response:
        url = f"{self.replicas[replica].url}/v1/admin/rollouts/sentiment{path}"
        return httpx.request(method, url, headers=OPERATOR, timeout=30, **kwargs)

    def status(self, replica: int = 0) -> dict[str, Any]:
        reply = self.op("GET", "", replica)
        assert reply.status_code == 200, reply.text
        answer: dict[str, Any] = reply.json()
        return answer

    def agreement(self, replica: int = 0) -> dict[str, Any]:
        found: dict[str, Any] = self.status(replica)["shadow"]["agreement"]
        return found

    def classify(self, texts: list[str], replica: int = 0, **headers: str) -> httpx.Response:
        headers["Authorization"] = f"Bearer {token('caller-1', ['client'])}"
        return httpx.post(
            f"{self.replicas[replica].url}/v1/classify",
            json={"texts": texts},
            headers=headers,
            timeout=30,
        )

    def counted(self, replica: int, outcome: str) -> float:
        labels = {"model": "sentiment", "version": "v2", "outcome": outcome}
        return self.replicas[replica].metric(METRIC, labels)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the state waited for was not reached")


@contextmanager
def shadow_system(
    tmp_path: Path, shadow_script: Script, *replica_settings: dict[str, str]
) -> Iterator[ShadowSystem]:
    """A Redis, a stable backend (sentiment v1, "positive" for every text), a shadow
    backend (v2, as scripted) and one gateway replica per settings given."""
    with ExitStack() as stack:
        redis_server: LocalRedis = stack.enter_context(local_redis(tmp_path / "redis", free_port()))
        stable = stack.enter_context(
            scripted_backend(Script(model="sentiment", versions=("v1",), label="positive"))
        )
        shadow = stack.enter_context(scripted_backend(shadow_script))
        backends = {
            "classifier": f"{stable.address},{shadow.address}",
            "ner": stable.address,
            "summarizer": stable.address,
        }
        common = {
            "redis_url": redis_server.url,
            "jwt_hs256_secret": SECRET,
            "cache_ttl_s": "0",
            "routing_follow_s": "0.2",
            "models_refresh_s": "0.5",
        }
        replicas = [
            stack.enter_context(gateway_process(backends, **(common | extra)))
            for extra in replica_settings
        ]
        try:
            yield ShadowSystem(stable, shadow, replicas)
        finally:
            shadow_script.release.set()  # let held calls end before the servers stop


def start_shadow(system: ShadowSystem, share: float = 100) -> dict[str, Any]:
    reply = system.op("POST", "/shadow", json={"version": "v2", "share": share, "reason": "t"})
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    revision: int = answer["routing_revision"]

    def followed(replica: int) -> Callable[[], bool]:
        return lambda: system.status(replica)["routing_revision"] >= revision

    for replica in range(1, len(system.replicas)):
        wait_until(followed(replica))
    return answer


def test_a_slow_or_failing_shadow_never_reaches_the_caller_and_is_counted(
    tmp_path: Path,
) -> None:
    script = Script(model="sentiment", versions=("v2",), label="negative", hold_classify=True)
    waiting = {"shadow_timeout_s": "60", "shadow_concurrency": "1"}
    hasty = {"shadow_timeout_s": "0.5"}
    with shadow_system(tmp_path, script, waiting, hasty) as system:
        started = start_shadow(system)
        # No table before: the one written routes everyone to the default version.
        assert [v["version"] for v in started["rollout"]["versions"]] == ["v1"]
        assert started["shadow"]["agreement"]["n"] == 0

        # The shadow holds every call: each caller still gets stable's answer, well within
        # a one-second budget. The first copy waits (replica 0 allows one at a time), so
        # the next two are dropped, not queued.
        for _ in range(3):
            reply = system.classify(["good"], 0, **{"X-Request-Timeout": "1"})
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-model-version"] == "v1"
            assert reply.json()["results"][0]["labels"][0]["label"] == "positive"
        assert system.counted(0, "dropped") == 2
        # Replica 1 gives its copy half a second: it fails by its deadline.
        assert system.classify(["good"], 1, **{"X-Request-Timeout": "1"}).status_code == 200
        wait_until(lambda: system.counted(1, "failed") == 1)
        # The held copy fails with the shadow's error once let go.
        script.classify_code = grpc.StatusCode.INTERNAL
        script.release.set()
        wait_until(lambda: system.counted(0, "failed") == 1)

        wait_until(lambda: system.agreement(1)["failed"] == 2)
        found = system.agreement(1)
        assert (found["n"], found["calls"], found["dropped"], found["value"]) == (0, 0, 2, None)
        assert system.counted(0, "compared") == system.counted(1, "compared") == 0
        # The live figures are stable's own, four answers with no error; the shadow has none.
        wait_until(lambda: system.status()["live"].get("v1", {}).get("requests") == 4)
        live = system.status()["live"]
        assert live["v1"]["errors"] == 0
        assert "v2" not in live


def test_agreement_is_exact_shared_by_replicas_and_gates_a_canary(tmp_path: Path) -> None:
    script = Script(
        model="sentiment", versions=("v2",), label="positive", labels_by_text={"four": "negative"}
    )
    with shadow_system(tmp_path, script, {}, {}) as system:
        start_shadow(system)
        # Pinned callers are not mirrored: their version is their choice, not stable's.
        pinned = system.classify(["one"], 1, **{"X-Model-Version": "v1"})
        assert pinned.headers["x-route-reason"] == "pinned"
        reply = system.classify(["one", "two", "three", "four"], 1)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-route-reason"] == "stable"
        assert [r["labels"][0]["label"] for r in reply.json()["results"]] == ["positive"] * 4

        # Counted by replica 1, read through replica 0.
        wait_until(lambda: system.agreement(0)["n"] == 4)
        found = system.agreement(0)
        low, high = wilson(3, 4)
        assert found["kind"] == "labels"
        assert found["value"] == 0.75
        assert (found["low"], found["high"]) == (pytest.approx(low), pytest.approx(high))
        assert found["mean_score_diff"] == pytest.approx(0.25)
        assert (found["calls"], found["failed"], found["dropped"]) == (1, 0, 0)
        assert found["stable_latency_ms"] > 0 and found["shadow_latency_ms"] > 0
        assert found["stable_latency_p95_ms"] > 0
        assert system.counted(1, "compared") == 1
        assert system.counted(0, "compared") == 0
        # The copy carried the request's id, at batch priority; stable's call did not.
        copied = system.shadow.script.seen_metadata[-1]
        assert copied["x-switchyard-priority"] == "low"
        assert copied["x-request-id"] == reply.headers["x-request-id"]
        assert "x-switchyard-priority" not in system.stable.script.seen_metadata[-1]

        # A canary whose guardrails want shadow agreement first: refused below the floor
        # (the lower bound of 3 in 4 is 30%), or with fewer comparisons than min_samples.
        def start(**guardrails: Any) -> httpx.Response:
            body = {"canary": "v2", "weight": 10, "guardrails": guardrails}
            return system.op("POST", "/start", json=body)

        below = start(min_samples=4, min_shadow_agreement=0.9)
        assert below.status_code == 409, below.text
        assert "under the guardrails' floor of 90.0%" in below.json()["error"]["message"]
        few = start(min_samples=5, min_shadow_agreement=0.1)
        assert few.status_code == 409
        assert "4 shadow comparisons" in few.json()["error"]["message"]
        allowed = start(min_samples=4, min_shadow_agreement=0.3)
        assert allowed.status_code == 200, allowed.text
        # The shadow carries on beside the canary.
        assert allowed.json()["shadow"]["version"] == "v2"

        # Another shadow start on the same pair keeps its counts; stopping keeps them too.
        assert start_shadow(system, 50)["shadow"]["agreement"]["n"] == 4
        stopped = system.op("DELETE", "/shadow")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["shadow"] is None
        actions = [e["action"] for e in system.op("GET", "/audit").json()["entries"]]
        assert actions == ["shadow-stop", "shadow", "start", "shadow"]


def test_bad_shadow_changes_are_refused_in_the_envelope(tmp_path: Path) -> None:
    script = Script(model="sentiment", versions=("v2",))
    with shadow_system(tmp_path, script, {}) as system:
        refusals = [
            (system.op("POST", "/shadow", json={"version": "v9", "share": 5}), 404),
            (system.op("POST", "/shadow", json={"version": "v1", "share": 5}), 400),
            (system.op("POST", "/shadow", json={"version": "v2", "share": 101}), 400),
            (system.op("POST", "/shadow", json={"version": "v2", "share": -1}), 400),
            (system.op("POST", "/shadow", json={"share": 5}), 400),
            (system.op("DELETE", "/shadow"), 404),  # no table yet
        ]
        for reply, status in refusals:
            assert reply.status_code == status, reply.text
            assert reply.json()["error"]["message"]
        nobody = httpx.post(
            f"{system.replicas[0].url}/v1/admin/rollouts/nosuch/shadow",
            json={"version": "v2", "share": 5},
            headers=OPERATOR,
        )
        assert nobody.status_code == 404
        client = {"Authorization": f"Bearer {token('caller-1', ['client'])}"}
        denied = httpx.post(
            f"{system.replicas[0].url}/v1/admin/rollouts/sentiment/shadow",
            json={"version": "v2", "share": 5},
            headers=client,
        )
        assert denied.status_code == 403
        start_shadow(system, 10)
        assert system.op("DELETE", "/shadow").status_code == 200
        again = system.op("DELETE", "/shadow")
        assert again.status_code == 409
        assert "no shadow" in again.json()["error"]["message"]
        # A retired version shadows no more.
        start_shadow(system, 10)
        retired = system.op("POST", "/versions/v2", json={"state": "retired"})
        assert retired.status_code == 200, retired.text
        assert retired.json()["shadow"] is None
