"""Overload, deadlines and cancellation against a real classifier process.

The process batches up to 8 texts and would wait an hour for a batch to fill, so texts sit
in its queue (bound 8) until the test fills the batch: every state here is reached on
purpose, never by racing the model.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from tests.support import CLASSIFIER, ServiceProcess, classifier_process, details

HOLDING: dict[str, object] = {
    "max_batch_size": 8,
    "max_queue_delay_ms": 3_600_000,
    "max_queue_size": 8,
}
V1 = {"model": "sentiment", "version": "v1"}


@pytest.fixture(scope="module")
def holding_classifier(
    prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with classifier_process(tmp_path_factory.mktemp("holding"), {"v1": HOLDING}) as service:
        yield service


def queued(service: ServiceProcess) -> float:
    return service.metric("switchyard_queue_depth", V1)


def test_a_full_queue_answers_resource_exhausted_at_once_and_stays_healthy(
    holding_classifier: ServiceProcess,
) -> None:
    service = holding_classifier
    with grpc.insecure_channel(service.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        ran_before = service.metric("switchyard_batch_size_count", V1)
        waiting = stub.Classify.future(pb.ClassifyRequest(texts=["I love this"] * 7), timeout=120)
        service.wait_metric("switchyard_queue_depth", V1, 7)

        with pytest.raises(grpc.RpcError) as refused:
            stub.Classify(pb.ClassifyRequest(texts=["one", "two"]), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in details(refused.value)
        metadata = cast("Iterable[tuple[str, str]]", refused.value.trailing_metadata() or ())
        trailers = dict(metadata)
        assert int(trailers["grpc-retry-pushback-ms"]) > 0

        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=CLASSIFIER), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING

        # One more text fills the batch of 8: both calls are answered by one forward pass.
        last = stub.Classify(pb.ClassifyRequest(texts=["I hate this"]), timeout=120)
        assert last.results[0].labels[0].label == "negative"
        assert len(waiting.result().results) == 7
        assert service.metric("switchyard_batch_size_count", V1) == ran_before + 1
        assert (
            service.metric(
                "switchyard_grpc_requests_total",
                {"method": "Classify", **V1, "code": "RESOURCE_EXHAUSTED"},
            )
            >= 1
        )


def test_a_cancelled_call_gives_its_slots_back(holding_classifier: ServiceProcess) -> None:
    service = holding_classifier
    with grpc.insecure_channel(service.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        waiting = stub.Classify.future(pb.ClassifyRequest(texts=["meh"] * 7), timeout=120)
        service.wait_metric("switchyard_queue_depth", V1, 7)
        waiting.cancel()  # type: ignore[no-untyped-call]
        service.wait_metric("switchyard_queue_depth", V1, 0)
        ran_before = service.metric("switchyard_batch_size_count", V1)
        reply = stub.Classify(pb.ClassifyRequest(texts=["I love this"] * 8), timeout=120)
        assert len(reply.results) == 8
        assert service.metric("switchyard_batch_size_sum", V1) > 0
        assert service.metric("switchyard_batch_size_count", V1) == ran_before + 1


def test_an_expired_deadline_is_dropped_before_it_runs(holding_classifier: ServiceProcess) -> None:
    service = holding_classifier
    with grpc.insecure_channel(service.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        ran_before = service.metric("switchyard_batch_size_count", V1)
        with pytest.raises(grpc.RpcError) as expired:
            stub.Classify(pb.ClassifyRequest(texts=["too late"]), timeout=0.5)
        assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        service.wait_metric("switchyard_queue_depth", V1, 0)
        assert service.metric("switchyard_batch_size_count", V1) == ran_before


def test_a_dead_model_worker_turns_the_service_not_serving(
    prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fast = {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_queue_size": 8}
    crash = tmp_path_factory.mktemp("crash")
    with classifier_process(crash, {"v1": fast}, model_worker="process") as service:
        workers = child_pids(service.process.pid)
        assert workers  # one per core by default
        for worker in workers:
            os.kill(worker, signal.SIGKILL)  # as the kernel's OOM killer would
        with grpc.insecure_channel(service.address) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            with pytest.raises(grpc.RpcError) as failed:
                stub.Classify(pb.ClassifyRequest(texts=["I love this"]), timeout=60)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=CLASSIFIER), timeout=60)
            for reply in watch:
                if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
            with pytest.raises(grpc.RpcError) as refused:
                stub.Classify(pb.ClassifyRequest(texts=["again"]), timeout=60)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def child_pids(pid: int) -> list[int]:
    """The model worker processes of a service (its children, without helper processes)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat[1]) == pid and b"resource_tracker" not in cmdline:
            children.append(int(entry.name))
    return children
