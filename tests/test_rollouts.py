"""Canary rollouts through two gateway replicas sharing one Redis, in front of two
scripted classifier backends: one hosting ``sentiment`` ``v1``, one hosting ``v2`` (these
tests are about the gateway's routing decisions; a backend made to fail or slow down on
cue is what the guardrails need).

Callers are JWT subjects, so a test can have as many as it likes. Waits are on states
(a replica's routing revision, a table's weight), never on sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest

from gateway.edge.middleware import version_failed
from gateway.edge.request_context import RequestRecord
from gateway.edge.tracing import trace_context
from gateway.routing.table import Rollout, choose
from switchyard.redis_server import LocalRedis, local_redis
from tests.scripted_backend import Script, ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, free_port, gateway_process

SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
WAIT_S = 60.0


def token(subject: str, roles: list[str]) -> str:
    now = int(time.time())
    claims = {
        "sub": subject,
        "iss": "switchyard",
        "aud": "switchyard-gateway",
        # Made once, when the file is imported: valid for longer than the slowest full run.
        "exp": now + 4 * 3600,
        "roles": roles,
        "tier": "enterprise",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


OPERATOR = {"Authorization": f"Bearer {token('ops-1', ['operator'])}"}


@dataclass
class System:
    redis: LocalRedis
    stable: ScriptedBackend
    canary: ScriptedBackend
    replicas: list[GatewayProcess]
    settings: dict[str, str]
    backends: dict[str, str]
    # One client for the whole test: a new one per call costs tens of milliseconds (its
    # TLS context), and these tests make hundreds of calls.
    http: httpx.Client

    def op(self, method: str, path: str, replica: int = 0, **kwargs: Any) -> httpx.Response:
        url = f"{self.replicas[replica].url}/v1/admin{path}"
        return self.http.request(method, url, headers=OPERATOR, timeout=30, **kwargs)

    def status(self, replica: int = 0) -> dict[str, Any]:
        reply = self.op("GET", "/rollouts/sentiment", replica)
        assert reply.status_code == 200, reply.text
        answer: dict[str, Any] = reply.json()
        return answer

    def audit(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.op("GET", "/rollouts/sentiment/audit").json()[
            "entries"
        ]
        return entries

    def rollout(self) -> Rollout:
        return Rollout.model_validate(self.status()["rollout"])

    def routed(self, replica: int) -> Rollout:
        """The table ``replica`` routes with (the status shows the stored one)."""
        reply = self.op("GET", "/rollouts", replica)
        assert reply.status_code == 200, reply.text
        return Rollout.model_validate(reply.json()["rollouts"]["sentiment"])

    def wait_revision(self, replica: int, revision: int) -> None:
        wait_until(lambda: self.status(replica)["routing_revision"] >= revision)

    def classify(
        self,
        subject: str,
        replica: int = 0,
        pin: str | None = None,
        **headers: str,
    ) -> httpx.Response:
        if pin:
            headers["X-Model-Version"] = pin
        headers["Authorization"] = f"Bearer {token(subject, ['client'])}"
        return self.http.post(
            f"{self.replicas[replica].url}/v1/classify",
            json={"text": "x"},
            headers=headers,
            timeout=30,
        )


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the state waited for was not reached")


@contextmanager
def rollout_system(tmp_path: Path, canary_backend: bool = True) -> Iterator[System]:
    """A fresh Redis, the two scripted backends and two gateway replicas."""
    with ExitStack() as stack:
        redis = stack.enter_context(local_redis(tmp_path / "redis", free_port()))
        stable = stack.enter_context(
            scripted_backend(Script(model="sentiment", versions=("v1",), label="calm"))
        )
        canary = stack.enter_context(
            scripted_backend(Script(model="sentiment", versions=("v2",), label="bold"))
        )
        classifiers = [stable.address, *([canary.address] if canary_backend else [])]
        backends = {
            "classifier": ",".join(classifiers),
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
        }
        replicas = [stack.enter_context(gateway_process(backends, **settings)) for _ in range(2)]
        http = stack.enter_context(httpx.Client(timeout=30))
        yield System(redis, stable, canary, replicas, settings, backends, http)


def start_canary(system: System, weight: float, **extra: Any) -> dict[str, Any]:
    reply = system.op(
        "POST",
        "/rollouts/sentiment/start",
        json={"canary": "v2", "weight": weight, "reason": "test", **extra},
    )
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def test_callers_keep_their_version_across_replicas_restarts_and_rising_weights(
    tmp_path: Path,
) -> None:
    with rollout_system(tmp_path) as system:
        started = start_canary(system, 30)
        revision = started["routing_revision"]
        system.wait_revision(1, revision)
        rollout = system.rollout()
        subjects = [f"user-{n}" for n in range(120)]
        expected = {s: choose(rollout, f"jwt:{s}", None).version for s in subjects}
        assert {"v1", "v2"} <= set(expected.values())
        for subject in subjects:
            for replica in (0, 1):
                reply = system.classify(subject, replica)
                assert reply.status_code == 200, reply.text
                assert reply.headers["x-model-version"] == expected[subject]
                reason = "canary" if expected[subject] == "v2" else "stable"
                assert reply.headers["x-route-reason"] == reason

        # A restarted replica assigns everyone as before.
        system.replicas[1].terminate()
        with gateway_process(system.backends, **system.settings) as restarted:
            system.replicas[1] = restarted
            for subject in subjects[:40]:
                assert system.classify(subject, 1).headers["x-model-version"] == expected[subject]

            # Raising the weight moves callers from stable to canary, never back.
            raised = system.op("POST", "/rollouts/sentiment/weight", json={"weight": 70})
            assert raised.status_code == 200, raised.text
            system.wait_revision(1, raised.json()["routing_revision"])
            now = {s: system.classify(s, 1).headers["x-model-version"] for s in subjects}
            assert all(now[s] == "v2" for s in subjects if expected[s] == "v2")
            assert sum(v == "v2" for v in now.values()) > sum(v == "v2" for v in expected.values())

        # The live figures, shared by the replicas, name both versions and the label each
        # answered with.
        def counted() -> int:
            live = system.status()["live"]
            return int(live["v1"]["requests"] + live["v2"]["requests"])

        wait_until(lambda: counted() >= 2 * len(subjects))
        live = system.status()["live"]
        assert live["v1"]["labels"] == {"calm": 1.0}
        assert live["v2"]["labels"] == {"bold": 1.0}


def test_pins_allowlists_deprecation_and_retirement(tmp_path: Path) -> None:
    with rollout_system(tmp_path) as system:
        start_canary(system, 0)
        pinned = system.classify("user-1", pin="v2")
        assert pinned.headers["x-model-version"] == "v2"
        assert pinned.headers["x-route-reason"] == "pinned"
        in_path = httpx.post(
            f"{system.replicas[0].url}/v1/models/sentiment/versions/v2/classify",
            json={"text": "x"},
            headers={"Authorization": f"Bearer {token('user-1', ['client'])}"},
        )
        assert in_path.status_code == 200, in_path.text
        assert in_path.headers["x-model-version"] == "v2"
        assert in_path.headers["x-route-reason"] == "pinned"

        listed = system.op(
            "PUT", "/rollouts/sentiment/allowlist/jwt:user-2", json={"version": "v2"}
        )
        assert listed.status_code == 200, listed.text
        system.wait_revision(1, listed.json()["routing_revision"])
        for replica in (0, 1):
            reply = system.classify("user-2", replica)
            assert reply.headers["x-model-version"] == "v2"
            assert reply.headers["x-route-reason"] == "allowlist"
        # A pin beats the allowlist.
        assert system.classify("user-2", pin="v1").headers["x-route-reason"] == "pinned"
        assert system.classify("user-3").headers["x-route-reason"] == "stable"

        promoted = system.op(
            "POST",
            "/rollouts/sentiment/promote",
            json={"sunset": "2027-06-30T00:00:00Z", "reason": "v2 is better"},
        )
        assert promoted.status_code == 200, promoted.text
        assert system.classify("user-3").headers["x-model-version"] == "v2"
        old = system.classify("user-3", pin="v1")
        assert old.status_code == 200
        assert old.headers["sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
        assert old.headers["deprecation"].startswith("@")

        system.op("DELETE", "/rollouts/sentiment/allowlist/jwt:user-2")
        retired = system.op("POST", "/rollouts/sentiment/versions/v1", json={"state": "retired"})
        assert retired.status_code == 200, retired.text
        gone = system.classify("user-3", pin="v1")
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "gone"

        actions = [e["action"] for e in system.audit()]
        assert actions == ["retired", "disallow", "promote", "allow", "start"]

        # A stream counts its time to first token in the live figures of its version.
        stream = httpx.post(
            f"{system.replicas[0].url}/v1/summarize/stream",
            json={"text": "x"},
            headers={"Authorization": f"Bearer {token('user-5', ['client'])}"},
            timeout=30,
        )
        assert stream.status_code == 200 and "event: token" in stream.text

        def ttft_counted() -> bool:
            live = system.op("GET", "/rollouts/scripted").json()["live"]
            return bool(live.get("s1", {}).get("ttft_ms", {}).get("p50"))

        wait_until(ttft_counted)


def test_invalid_changes_are_refused_and_change_nothing(tmp_path: Path) -> None:
    with rollout_system(tmp_path) as system:
        start_canary(system, 10)
        before = system.status()
        refusals = [
            (system.op("POST", "/rollouts/sentiment/weight", json={"weight": 150}), 400),
            (system.op("POST", "/rollouts/sentiment/weight", json={"weight": -1}), 400),
            (
                system.op("POST", "/rollouts/sentiment/start", json={"canary": "v9", "weight": 5}),
                404,
            ),
            (
                system.op(
                    "POST", "/rollouts/nosuchmodel/start", json={"canary": "v2", "weight": 5}
                ),
                404,
            ),
            (system.op("PUT", "/rollouts/sentiment/allowlist/jwt:x", json={"version": "v7"}), 404),
            (
                system.op("PUT", "/rollouts/sentiment/allowlist/someone", json={"version": "v2"}),
                400,
            ),
            (system.op("POST", "/rollouts/sentiment/versions/v1", json={"state": "retired"}), 409),
        ]
        for reply, status in refusals:
            assert reply.status_code == status, reply.text
            assert reply.json()["error"]["message"]
        # A client may not change routing.
        client = {"Authorization": f"Bearer {token('user-1', ['client'])}"}
        denied = httpx.post(
            f"{system.replicas[0].url}/v1/admin/rollouts/sentiment/weight",
            json={"weight": 50},
            headers=client,
        )
        assert denied.status_code == 403
        assert httpx.get(f"{system.replicas[0].url}/v1/admin/rollouts/sentiment").status_code == 401

        # A version whose only backend is down cannot be given traffic.
        with scripted_backend(Script(model="sentiment", versions=("v3",))) as third:
            added = system.op(
                "POST", "/backends", json={"service": "classifier", "address": third.address}
            )
            assert added.status_code == 201, added.text
        wait_until(
            lambda: any(
                b["address"] == third.address and not b["healthy"]
                for b in system.op("GET", "/backends").json()["backends"]
            )
        )
        no_backend = system.op("POST", "/rollouts/sentiment/weight", json={"weight": 20})
        assert no_backend.status_code == 200  # v2 is healthy: fine
        down = system.op("PUT", "/rollouts/sentiment/allowlist/jwt:x", json={"version": "v3"})
        assert down.status_code == 409
        assert "no healthy backend" in down.json()["error"]["message"]

        after = system.status()
        assert after["rollout"]["versions"] != before["rollout"]["versions"]  # the weight 20
        actions = [e["action"] for e in system.audit()]
        assert actions == ["set-weight", "start"]


def guarded_canary(system: System, **guardrails: Any) -> None:
    # No warm-up: these tests send their traffic as soon as the canary starts.
    limits = {"min_samples": 20, "max_error_rate_delta": 0.1, "max_p95_ratio": 3.0, "warmup_s": 0}
    start_canary(system, 50, guardrails={**limits, **guardrails})
    system.wait_revision(1, system.status()["routing_revision"])


def drive_until_rolled_back(system: System) -> dict[str, Any]:
    """Traffic from many callers through both replicas until the canary's weight is 0."""
    for round_number in range(100):
        for n in range(20):
            system.classify(f"user-{round_number}-{n}", n % 2)
        rollout = system.rollout()
        if rollout.canaries[0].weight == 0:
            return system.status()
    raise AssertionError("the guardrail never rolled the canary back")


def rollbacks_counted(system: System) -> float:
    return sum(
        replica.metric(
            "switchyard_gateway_guardrail_rollbacks_total", {"model": "sentiment", "version": "v2"}
        )
        for replica in system.replicas
    )


@pytest.mark.parametrize("fault", ["errors", "slowness"])
def test_a_bad_canary_is_rolled_back_once_by_the_guardrail(tmp_path: Path, fault: str) -> None:
    with rollout_system(tmp_path) as system:
        if fault == "errors":
            system.canary.script.classify_code = grpc.StatusCode.INTERNAL
        else:
            system.canary.script.classify_delay_s = 0.2
        guarded_canary(system)
        status = drive_until_rolled_back(system)
        assert status["rollout"]["paused"] is True
        # Both replicas judge; one wrote the rollback, and only it counted it. The status
        # shows the stored table, which the other replica may not route with yet.
        wait_until(lambda: all(system.routed(r).canaries[0].weight == 0 for r in (0, 1)))
        entries = system.audit()
        rollbacks = [e for e in entries if e["action"] == "rollback"]
        assert len(rollbacks) == 1
        assert rollbacks[0]["actor"] == "guardrail"
        assert ("error rate" if fault == "errors" else "p95 latency") in rollbacks[0]["reason"]
        assert rollbacks_counted(system) == 1
        # Everyone is on stable now.
        assert {system.classify(f"user-x{n}").headers["x-model-version"] for n in range(20)} == {
            "v1"
        }


@pytest.mark.parametrize(
    ("status", "budget_s", "counts"),
    [
        (200, None, False),
        (400, None, False),
        (429, None, False),
        (499, None, False),  # the client went away
        (500, None, True),
        (503, None, True),
        (504, None, True),  # no budget given: the gateway's own limit was missed
        (504, 5.0, True),
        (504, 0.2, False),  # a budget under the floor: the caller's choice
        (503, 0.2, True),
    ],
)
def test_only_the_versions_own_failures_count_against_it(
    status: int, budget_s: float | None, counts: bool
) -> None:
    record = RequestRecord(trace_context(None, None), caller_budget_s=budget_s)
    assert version_failed(status, record, min_budget_s=1.0) is counts


def test_a_caller_cannot_get_a_canary_rolled_back(tmp_path: Path) -> None:
    """Deadlines a caller sets too short and pinned traffic are not the canary's failures:
    they are shown in its figures but never judged against it."""
    with rollout_system(tmp_path) as system:
        # Judged on errors alone: the scripted backends' latency on a loaded machine is
        # noise that a tight p95 limit would act on.
        guarded_canary(system, max_p95_ratio=1000.0)
        rollout = system.rollout()
        impossible = {"X-Request-Timeout": "0.000001"}
        for n in range(50):  # the attack: pin v2 with a budget no one could meet
            reply = system.classify("attacker", n % 2, pin="v2", **impossible)
            assert reply.status_code == 504
        on_canary = [s for s in (f"user-{n}" for n in range(400))
                     if choose(rollout, f"jwt:{s}", None).version == "v2"]  # fmt: skip
        for n, subject in enumerate(on_canary[:30]):  # assigned to v2, budgets too short
            assert system.classify(subject, n % 2, **impossible).status_code == 504
        judged = ""
        for round_number in range(100):  # honest traffic until both sides are judged
            for n in range(20):
                assert system.classify(f"honest-{round_number}-{n}", n % 2).status_code == 200
            judged = system.status()["guardrails"].get("v2", "")
            if judged.startswith("within limits"):
                break
        assert judged.startswith("within limits"), judged
        # Every request is shown, pinned ones apart (once the other replica's counts are
        # flushed); none was the version's own failure.
        wait_until(lambda: system.status()["live"]["v2"]["pinned"] >= 50)
        live = system.status()["live"]["v2"]
        assert live["requests"] >= 80 and live["errors"] == 0
        assert system.rollout().canaries[0].weight == 50
        assert [e["action"] for e in system.audit()] == ["start"]
        assert rollbacks_counted(system) == 0


def test_a_healthy_canary_is_stepped_up_automatically(tmp_path: Path) -> None:
    with rollout_system(tmp_path) as system:
        guarded_canary(system, steps=[60, 80], step_interval_s=0.5, max_p95_ratio=10.0)
        weights: list[float] = []
        for round_number in range(200):
            for n in range(10):
                system.classify(f"user-{round_number}-{n}", n % 2)
            weight = system.rollout().canaries[0].weight
            if not weights or weights[-1] != weight:
                weights.append(weight)
            if weight == 80:
                break
        assert weights[0] == 50 and weights[-1] == 80 and weights == sorted(weights)
        steps = [e for e in system.audit() if e["action"] == "step"]
        assert [e["after"]["versions"][-1]["weight"] for e in reversed(steps)] == [60, 80]


def test_a_backend_added_at_run_time_takes_traffic_on_every_replica(tmp_path: Path) -> None:
    with rollout_system(tmp_path, canary_backend=False) as system:
        unknown = system.classify("user-1", pin="v2")
        assert unknown.status_code == 404
        added = system.op(
            "POST",
            "/backends",
            replica=0,
            json={"service": "classifier", "address": system.canary.address, "reason": "v2"},
        )
        assert added.status_code == 201, added.text
        system.wait_revision(1, added.json()["routing_revision"])
        for replica in (0, 1):
            reply = system.classify("user-1", replica, pin="v2")
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-model-version"] == "v2"
        assert start_canary(system, 100)["rollout"]["versions"][-1]["version"] == "v2"

        removed = system.op("DELETE", f"/backends/classifier/{system.canary.address}", replica=1)
        assert removed.status_code == 200, removed.text
        assert (
            system.op("DELETE", f"/backends/classifier/{system.canary.address}").status_code == 404
        )
        entries = system.audit()
        assert [e["action"] for e in entries] == ["start"]


def test_replicas_route_with_their_last_table_while_redis_is_away_and_restore_it(
    tmp_path: Path,
) -> None:
    with rollout_system(tmp_path) as system:
        started = start_canary(system, 50)
        system.wait_revision(1, started["routing_revision"])
        rollout = system.rollout()
        subjects = [f"user-{n}" for n in range(30)]
        expected = {s: choose(rollout, f"jwt:{s}", None).version for s in subjects}
        assert set(expected.values()) == {"v1", "v2"}

        system.redis.stop()  # rate limits fail open; tokens need no Redis
        for subject in subjects:
            for replica in (0, 1):
                reply = system.classify(subject, replica)
                assert reply.status_code == 200, reply.text
                assert reply.headers["x-model-version"] == expected[subject]

        # Redis comes back empty (no persistence): a replica writes its last tables back,
        # so callers keep their versions and the operator's table is not lost.
        with local_redis(tmp_path / "redis", system.redis.port):
            wait_until(
                lambda: system.op("GET", "/rollouts/sentiment").json()["rollout"] is not None
            )
            assert [e["action"] for e in system.audit()] == ["restore"]
            for subject in subjects:
                assert system.classify(subject, 1).headers["x-model-version"] == expected[subject]
