"""A gRPC server that plays the classifier and summarizer services by a script, for the
gateway's fault tests: failures a real model service cannot be made to produce on cue
(an overload with a given retry hint, a failure half way through a stream), and a record
of the metadata each call carried. Tests of serving itself use the real services.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.client.config import CLASSIFIER, NER, SUMMARIZER
from switchyard.common.v1 import models_pb2
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

Context = aio.ServicerContext[Any, Any]


@dataclass
class Script:
    """What the next calls do; a test sets it before calling."""

    classify_code: grpc.StatusCode = grpc.StatusCode.OK
    classify_message: str = ""
    trailing_metadata: tuple[tuple[str, str], ...] = ()
    stream_pieces: int = 3
    stream_failure: grpc.StatusCode = grpc.StatusCode.INTERNAL
    hold_streams: bool = False
    """Keep each stream open after its pieces until ``release`` is set."""
    release: threading.Event = field(default_factory=threading.Event)
    stream_cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the caller cancels a classify stream."""
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    model: str = "scripted"
    versions: tuple[str, ...] = ("s1",)
    """The versions this backend hosts (the first is its default)."""
    classify_delay_s: float = 0.0
    label: str = "scripted"
    labels_by_text: dict[str, str] = field(default_factory=dict)
    """Labels for particular texts (the others get ``label``)."""
    hold_classify: bool = False
    """Keep each Classify call waiting until ``release`` is set."""
    seen_texts: list[list[str]] = field(default_factory=list)
    """The texts of each Classify call, in the order the calls came."""
    invalid_texts: frozenset[str] = frozenset()
    """A Classify call with any of these texts fails with INVALID_ARGUMENT."""


def _models(script: Script) -> list[models_pb2.ModelInfo]:
    versions = [
        models_pb2.ModelVersion(version=v, status=models_pb2.MODEL_STATUS_READY, is_default=i == 0)
        for i, v in enumerate(script.versions)
    ]
    return [models_pb2.ModelInfo(name=script.model, is_default=True, versions=versions)]


class ScriptedClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: Context
    ) -> classifier_pb2.ClassifyResponse:
        script = self.script
        script.seen_metadata.append(dict(context.invocation_metadata() or ()))
        script.seen_texts.append(list(request.texts))
        version = request.version or script.versions[0]
        if request.model not in ("", script.model) or version not in script.versions:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no {request.model} {version}")
        if script.classify_delay_s:
            await asyncio.sleep(script.classify_delay_s)
        if script.hold_classify:
            await asyncio.get_running_loop().run_in_executor(None, script.release.wait, 60)
        if script.invalid_texts.intersection(request.texts):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a scripted invalid text")
        if script.classify_code is not grpc.StatusCode.OK:
            context.set_trailing_metadata(script.trailing_metadata)
            await context.abort(script.classify_code, script.classify_message)
        return classifier_pb2.ClassifyResponse(
            model=script.model,
            version=version,
            request_id=request.request_id,
            results=[
                classifier_pb2.Classification(
                    labels=[
                        classifier_pb2.LabelScore(
                            label=script.labels_by_text.get(text, script.label), score=1.0
                        )
                    ]
                )
                for text in request.texts
            ],
        )

    async def ClassifyStream(
        self, requests: AsyncIterator[classifier_pb2.ClassifyStreamRequest], context: Context
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        """Reads every text, answers the first ``stream_pieces`` (then holds the stream
        open until ``release``, with ``hold_streams``), then fails with
        ``stream_failure`` if any are left. (It fails only once the caller is done writing:
        a client's write that races the end of its call makes grpc report the call as
        INTERNAL, whatever status the server gave.)"""
        script = self.script
        try:
            texts = [request async for request in requests]
            label = classifier_pb2.LabelScore(label=script.label, score=1.0)
            for request in texts[: script.stream_pieces]:
                yield classifier_pb2.ClassifyStreamResponse(
                    id=request.id,
                    model=script.model,
                    version=request.version or script.versions[0],
                    result=classifier_pb2.Classification(labels=[label]),
                )
            if script.hold_streams:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, script.release.wait, 60)
            if len(texts) > script.stream_pieces:
                await context.abort(script.stream_failure, "the scripted stream fails here")
        except asyncio.CancelledError:
            script.stream_cancelled.set()
            raise

    async def ListModels(
        self, request: classifier_pb2.ListModelsRequest, context: Context
    ) -> classifier_pb2.ListModelsResponse:
        return classifier_pb2.ListModelsResponse(models=_models(self.script))


class ScriptedSummarizer(summarizer_pb2_grpc.SummarizerServiceServicer):
    """Streams ``stream_pieces`` pieces (a summary's or a generation's), then fails with
    ``stream_failure``."""

    def __init__(self, script: Script) -> None:
        self.script = script

    async def Summarize(
        self, request: summarizer_pb2.SummarizeRequest, context: Context
    ) -> summarizer_pb2.SummarizeResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not scripted")

    async def SummarizeStream(
        self, request: summarizer_pb2.SummarizeStreamRequest, context: Context
    ) -> AsyncIterator[summarizer_pb2.SummarizeStreamResponse]:
        for index in range(self.script.stream_pieces):
            yield summarizer_pb2.SummarizeStreamResponse(
                model="scripted",
                version="s1",
                text=f"piece{index} ",
                index=index,
                generated_tokens=index + 1,
            )
        if self.script.hold_streams:
            await asyncio.get_running_loop().run_in_executor(None, self.script.release.wait, 60)
        await context.abort(self.script.stream_failure, "the scripted stream fails here")

    async def Generate(
        self, request: summarizer_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[summarizer_pb2.GenerateResponse]:
        for index in range(self.script.stream_pieces):
            yield summarizer_pb2.GenerateResponse(
                model="scripted",
                version="s1",
                text=f"piece{index} ",
                index=index,
                generated_tokens=index + 1,
            )
        if self.script.hold_streams:
            await asyncio.get_running_loop().run_in_executor(None, self.script.release.wait, 60)
        await context.abort(self.script.stream_failure, "the scripted stream fails here")

    async def ListModels(
        self, request: summarizer_pb2.ListModelsRequest, context: Context
    ) -> summarizer_pb2.ListModelsResponse:
        return summarizer_pb2.ListModelsResponse(models=_models(self.script))


@dataclass
class ScriptedBackend:
    address: str
    script: Script


@contextmanager
def scripted_backend(script: Script | None = None) -> Iterator[ScriptedBackend]:
    """The scripted server on a free port, run on its own event loop in a thread."""
    script = script or Script()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None
    port = 0

    async def serve() -> None:
        nonlocal stop, port
        server = aio.server()
        classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(
            ScriptedClassifier(script), server
        )
        summarizer_pb2_grpc.add_SummarizerServiceServicer_to_server(
            ScriptedSummarizer(script), server
        )
        health = health_aio.HealthServicer()
        for name in ("", CLASSIFIER, NER, SUMMARIZER):
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stop = asyncio.Event()
        started.set()
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(30), "the scripted backend did not start"
    try:
        yield ScriptedBackend(f"127.0.0.1:{port}", script)
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
