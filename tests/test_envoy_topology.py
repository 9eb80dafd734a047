"""The production topology on this machine: two classifier replicas (real service
processes) behind a real Envoy running the shipped config rendered for their ports, and a
gateway pointed at Envoy. Calls through the gateway reach both replicas, and a replica
killed with SIGKILL under load costs no call (Envoy retries what it held on the other)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from switchyard.envoy_process import EnvoyProcess, envoy_process
from switchyard.gateway_load import OK, GatewayLoad
from switchyard.redis_server import LocalRedis
from tests.support import GatewayProcess, ServiceProcess, gateway_process, service_process

pytestmark = pytest.mark.timeout(300)

ANSWER_S = 60.0
CLASSIFY = {"method": "Classify", "code": "OK"}


@pytest.fixture(scope="module")
def replicas(prepared_models: Path) -> Iterator[list[ServiceProcess]]:
    with ExitStack() as stack:
        yield [stack.enter_context(service_process("classifier")) for _ in range(2)]


@pytest.fixture(scope="module")
def envoy(
    replicas: list[ServiceProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    ports = [replica.port for replica in replicas]
    with envoy_process({"classifier": ports}, tmp_path_factory.mktemp("envoy")) as process:
        yield process


@pytest.fixture(scope="module")
def fronted_gateway(envoy: EnvoyProcess, redis_server: LocalRedis) -> Iterator[GatewayProcess]:
    backends = {"classifier": envoy.address("classifier"), "ner": "", "summarizer": ""}
    # No prediction cache: every call must reach a replica.
    with gateway_process(backends, redis_url=redis_server.url, cache_ttl_s="0") as gateway:
        yield gateway


def answered(replica: ServiceProcess) -> float:
    return sum(
        replica.metric("switchyard_grpc_requests_total", {**CLASSIFY, "version": version})
        for version in ("v1", "v2")
    )


def test_calls_through_envoy_reach_both_replicas(
    fronted_gateway: GatewayProcess,
    envoy: EnvoyProcess,
    replicas: list[ServiceProcess],
    client_key: str,
) -> None:
    with GatewayLoad([fronted_gateway.url], client_key, concurrency=4, max_calls=40) as load:
        assert load.wait_answers(40, ANSWER_S)
    assert load.snapshot() == {OK: 40}
    # Each replica answered some (LEAST_REQUEST over two healthy hosts), as both its own
    # metrics and Envoy's per-host counters say.
    assert all(answered(replica) > 0 for replica in replicas)
    states = envoy.hosts("classifier")
    assert {host for host, state in states.items() if state.requests > 0} == {
        replica.address for replica in replicas
    }


def test_a_replica_killed_under_load_costs_no_call(
    fronted_gateway: GatewayProcess,
    envoy: EnvoyProcess,
    replicas: list[ServiceProcess],
    client_key: str,
) -> None:
    survivor, victim = replicas
    with GatewayLoad([fronted_gateway.url], client_key, concurrency=6, max_calls=400) as load:
        assert load.wait_answers(30, ANSWER_S)
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=30)
        # Enough calls after the kill that some were in flight on it, and later ones
        # were sent to it before Envoy's health check noticed.
        assert load.wait_answers(80, ANSWER_S)
    assert load.failures() == {}
    assert survivor.process.poll() is None
