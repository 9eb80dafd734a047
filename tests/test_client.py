"""The typed clients against the real services, and their retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from switchyard.client import (
    AsyncClassifierClient,
    AsyncSummarizerClient,
    ClassifierClient,
    NerClient,
    SummarizerClient,
)
from tests.support import ServiceProcess, service_process


@pytest.fixture(scope="module")
def ner(prepared_models: Path) -> Iterator[ServiceProcess]:
    with service_process("ner") as service:
        yield service


@pytest.fixture(scope="module")
def summarizer(prepared_models: Path) -> Iterator[ServiceProcess]:
    with service_process("summarizer") as service:
        yield service


def test_classifier_client_unary_and_stream(classifier: ServiceProcess) -> None:
    with ClassifierClient(classifier.address, timeout_s=30) as client:
        reply = client.classify(["I love this", "I hate this"], version="v2")
        assert [r.labels[0].label for r in reply.results] == ["positive", "negative"]
        results = {r.id: r for r in client.classify_stream(["great", ("mine", "awful")])}
        assert set(results) == {"0", "mine"}
        assert results["mine"].result.labels[0].label == "negative"
        assert [m.name for m in client.list_models()] == ["sentiment"]


def test_ner_client(ner: ServiceProcess) -> None:
    with NerClient(ner.address, timeout_s=30) as client:
        reply = client.extract_entities(["Last spring Ingrid Halvorsen moved to Lisbon."])
        assert {e.text for e in reply.results[0].entities} >= {"Ingrid Halvorsen", "Lisbon"}
        streamed = list(client.extract_entities_stream(["Priya Raman visited Hanoi."]))
        assert streamed[0].id == "0" and streamed[0].HasField("result")


def test_summarizer_client_pieces_join_to_the_summary(summarizer: ServiceProcess) -> None:
    text = "The Eiffel Tower in Paris was built from 1887 to 1889 for the World's Fair."
    with SummarizerClient(summarizer.address) as client:
        whole = client.summarize(text, max_new_tokens=24, seed=3)
        pieces = list(client.summary_pieces(text, max_new_tokens=24, seed=3))
        assert len(pieces) > 1
        assert "".join(pieces) == whole.summary


def test_async_clients(classifier: ServiceProcess, summarizer: ServiceProcess) -> None:
    async def run() -> tuple[str, list[str]]:
        async with AsyncClassifierClient(classifier.address, timeout_s=30) as classifier_client:
            reply = await classifier_client.classify(["I love this"])
        async with AsyncSummarizerClient(summarizer.address) as summarizer_client:
            pieces = [
                p
                async for p in summarizer_client.summary_pieces(
                    "Paris is the capital of France.", max_new_tokens=12
                )
            ]
        return reply.results[0].labels[0].label, pieces

    label, pieces = asyncio.run(run())
    assert label == "positive"
    assert pieces


class FlakyClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    """Answers UNAVAILABLE to the first ``failures`` calls, then a fixed reply."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def Classify(
        self, request: pb.ClassifyRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyResponse:
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return pb.ClassifyResponse(model="sentiment", version="v1")

    def ClassifyStream(
        self, request_iterator: Iterator[pb.ClassifyStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassifyStreamResponse]:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this test")
        yield from ()

    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this test")


@pytest.mark.parametrize(("failures", "succeeds"), [(2, True), (10, False)])
def test_unary_calls_are_retried_on_unavailable(failures: int, succeeds: bool) -> None:
    flaky = FlakyClassifier(failures)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(flaky, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with ClassifierClient(f"127.0.0.1:{port}", timeout_s=30) as client:
            if succeeds:
                assert client.classify(["hello"]).model == "sentiment"
                assert flaky.calls == failures + 1
            else:
                with pytest.raises(grpc.RpcError) as failed:
                    client.classify(["hello"])
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
                assert flaky.calls == 4  # the policy's maxAttempts
    finally:
        server.stop(None)
