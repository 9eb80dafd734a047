"""The production topology on this machine: two classifier replicas (real service
processes) behind a real Envoy running the shipped config rendered for their ports, and a
gateway pointed at Envoy. Calls through the gateway reach both replicas, and a replica
killed with SIGKILL under load costs no call (Envoy retries what it held on the other):
neither through the gateway nor straight to Envoy from a channel that never retries
(without `reset` in the retry policy, those fail UNAVAILABLE)."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
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


class DirectCalls:
    """Classify calls straight to Envoy's listener from a channel that never retries:
    whatever is retried, Envoy retried it."""

    def __init__(self, address: str, callers: int) -> None:
        self.address = address
        self.codes: Counter[str] = Counter()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._call, daemon=True) for _ in range(callers)]
        for thread in self.threads:
            thread.start()

    def _call(self) -> None:
        options = [("grpc.enable_retries", 0)]
        with grpc.insecure_channel(self.address, options=options) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            number = 0
            while not self.stop.is_set():
                number += 1
                request = classifier_pb2.ClassifyRequest(texts=[f"direct call {number}"])
                try:
                    stub.Classify(request, timeout=ANSWER_S)
                    self.codes["OK"] += 1
                except grpc.RpcError as error:
                    self.codes[error.code().name] += 1

    def finish(self) -> Counter[str]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=ANSWER_S)
        return self.codes


def test_a_replica_killed_under_load_costs_no_call(
    fronted_gateway: GatewayProcess,
    envoy: EnvoyProcess,
    replicas: list[ServiceProcess],
    client_key: str,
) -> None:
    survivor, victim = replicas
    direct = DirectCalls(envoy.address("classifier"), callers=4)
    with GatewayLoad([fronted_gateway.url], client_key, concurrency=4, max_calls=400) as load:
        assert load.wait_answers(30, ANSWER_S)
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=30)
        # Enough calls after the kill that some were in flight on it, and later ones
        # were sent to it before Envoy's health check noticed.
        assert load.wait_answers(80, ANSWER_S)
    codes = direct.finish()
    assert load.failures() == {}
    assert set(codes) == {"OK"}, codes
    assert survivor.process.poll() is None
