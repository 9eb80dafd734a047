"""SIGTERM drains a real classifier process: nothing accepted is lost."""

from __future__ import annotations

import os
import queue
import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from tests.support import CLASSIFIER, ServiceProcess, classifier_process, details

# Batches would wait an hour to fill: the accepted calls are still queued at SIGTERM.
HOLDING: dict[str, object] = {
    "max_batch_size": 64,
    "max_queue_delay_ms": 3_600_000,
    "max_queue_size": 64,
}
CALLS = 12
FAST: dict[str, object] = {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_queue_size": 8}


def signal_service(service: ServiceProcess, how: str) -> None:
    if how == "SIGTERM to the service":
        service.process.send_signal(signal.SIGTERM)
    else:  # Ctrl-C in a terminal: every process of the group, model workers included
        os.killpg(service.process.pid, signal.SIGINT)


@pytest.mark.parametrize("how", ["SIGTERM to the service", "SIGINT to the process group"])
def test_a_signal_turns_not_serving_and_every_accepted_call_is_answered(
    prepared_models: Path, tmp_path: Path, how: str
) -> None:
    with classifier_process(tmp_path, {"v1": HOLDING}) as service:
        with grpc.insecure_channel(service.address) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=CLASSIFIER), timeout=120)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

            calls = [
                stub.Classify.future(
                    pb.ClassifyRequest(texts=[f"I love this, call {i}"]), timeout=120
                )
                for i in range(CALLS)
            ]
            service.wait_metric(
                "switchyard_queue_depth", {"model": "sentiment", "version": "v1"}, CALLS
            )
            signal_service(service, how)

            # Health turns NOT_SERVING while the accepted calls are still being answered.
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            answers = [call.result() for call in calls]
            assert [a.results[0].labels[0].label for a in answers] == ["positive"] * CALLS
        assert service.process.wait(timeout=120) == 0
        assert any(r.get("message") == "draining" for r in service.logs)


def test_during_the_drain_new_calls_are_refused_and_open_streams_are_closed_cleanly(
    prepared_models: Path, tmp_path: Path
) -> None:
    with classifier_process(tmp_path, {"v1": FAST}) as service:
        with grpc.insecure_channel(service.address) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            outbox: queue.Queue[pb.ClassifyStreamRequest | None] = queue.Queue()
            stream = iter(stub.ClassifyStream(iter(outbox.get, None), timeout=120))
            outbox.put(pb.ClassifyStreamRequest(id="before", text="I love this"))
            assert next(stream).id == "before"  # the stream is accepted and open

            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=CLASSIFIER), timeout=120)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            service.process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING

            # The open stream reads nothing more: every item it had read was answered, and
            # it ends with UNAVAILABLE, telling the caller to resend the rest elsewhere.
            outbox.put(pb.ClassifyStreamRequest(id="after", text="I hate this"))
            with pytest.raises(grpc.RpcError) as closed:
                next(stream)
            assert closed.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "resend" in details(closed.value)
            outbox.put(None)

            # A new call is refused with UNAVAILABLE: by the draining service, or by gRPC
            # itself once the server has stopped; either way the caller retries elsewhere.
            with pytest.raises(grpc.RpcError) as refused:
                stub.Classify(pb.ClassifyRequest(texts=["I love this"]), timeout=60)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert service.process.wait(timeout=120) == 0
