"""The SummarizerService RPCs: one generation per call, its pieces streamed as they come."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc import aio

from services.runtime.catalogue import catalogue
from services.runtime.inputs import check_text, deadline_of, is_low_priority
from services.runtime.metrics import ServiceMetrics, note_model
from services.runtime.repository import HostedVersion, ModelRepository
from services.summarizer import tracing as generation_span
from services.summarizer.convert import usage_to_pb
from services.summarizer.generation import GenerationJob, Prompt, Usage
from services.summarizer.options import check_options, check_prompt
from services.summarizer.stops import StopScanner, check_stops
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from switchyard.summarizer.v1 import summarizer_pb2_grpc as pb_grpc

Context = aio.ServicerContext[Any, Any]
Repository = ModelRepository[GenerationJob, Usage]
Hosted = HostedVersion[GenerationJob, Usage]


@dataclass(frozen=True)
class _Piece:
    text: str
    generated_tokens: int  # generated so far, this piece's tokens included


@dataclass(frozen=True)
class _End:
    usage: Usage


class SummarizerServicer(pb_grpc.SummarizerServiceServicer):
    def __init__(
        self, repository: Repository, metrics: ServiceMetrics, models_dir: Path | None = None
    ) -> None:
        self._repository = repository
        self._metrics = metrics
        self._models_dir = models_dir  # where ListModels reads agreement figures

    async def Summarize(
        self, request: pb.SummarizeRequest, context: Context
    ) -> pb.SummarizeResponse:
        hosted = self._resolve(request.model, request.version)
        text = check_text(request.text, hosted.spec.max_input_chars)
        pieces: list[str] = []
        usage = Usage()
        generation = self._generate(hosted, text, None, request.options, context)
        async with contextlib.aclosing(generation):
            async for item in generation:
                if isinstance(item, _End):
                    usage = item.usage
                else:
                    pieces.append(item.text)
        return pb.SummarizeResponse(
            model=hosted.model,
            version=hosted.version,
            request_id=request.request_id,
            summary="".join(pieces),
            usage=usage_to_pb(usage),
        )

    async def SummarizeStream(
        self, request: pb.SummarizeStreamRequest, context: Context
    ) -> AsyncIterator[pb.SummarizeStreamResponse]:
        hosted = self._resolve(request.model, request.version)
        text = check_text(request.text, hosted.spec.max_input_chars)
        generation = self._generate(hosted, text, None, request.options, context)
        async with contextlib.aclosing(generation):
            index = 0
            async for item in generation:
                message = pb.SummarizeStreamResponse(
                    model=hosted.model, version=hosted.version, index=index
                )
                _fill(message, item)
                yield message
                index += 1

    async def Generate(
        self, request: pb.GenerateRequest, context: Context
    ) -> AsyncIterator[pb.GenerateResponse]:
        hosted = self._resolve(request.model, request.version)
        prompt = check_prompt(request, hosted.spec.max_input_chars)
        generation = self._generate(hosted, "", prompt, request.options, context)
        async with contextlib.aclosing(generation):
            index = 0
            async for item in generation:
                message = pb.GenerateResponse(
                    model=hosted.model, version=hosted.version, index=index
                )
                _fill(message, item)
                yield message
                index += 1

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        models = catalogue(self._repository, generator=True, models_dir=self._models_dir)
        return pb.ListModelsResponse(models=models)

    def _resolve(self, model: str, version: str) -> Hosted:
        hosted = self._repository.resolve(model, version)
        note_model(hosted.model, hosted.version)
        return hosted

    async def _generate(
        self,
        hosted: Hosted,
        text: str,
        prompt: Prompt | None,
        options: pb.GenerationOptions,
        context: Context,
    ) -> AsyncGenerator[_Piece | _End, None]:
        """Each generated piece as it comes, then the usage. Leaving early (the caller
        went away, or its deadline passed) cancels the generation, and so does a stop
        sequence, whose text and what follows it are never sent."""
        checked = check_options(options, hosted.spec)
        operation = generation_span.TEXT_COMPLETION if prompt is None else generation_span.CHAT
        span = generation_span.start(operation, hosted.model, hosted.version, checked)
        usage: Usage | None = None
        scanner = StopScanner(check_stops(options.stop))
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[_Piece | None] = asyncio.Queue()
        model, version = hosted.model, hosted.version

        def on_piece(piece: str) -> None:  # called on the worker thread
            loop.call_soon_threadsafe(pieces.put_nowait, _Piece(piece, job.generated_tokens))

        def on_finished(usage: Usage) -> None:
            self._metrics.generation_finished(model, version, usage)

        job = GenerationJob(
            text,
            checked,
            on_piece=on_piece,
            on_finished=on_finished,
            prompt=prompt,
            on_started=lambda: self._metrics.generation_started(model, version),
        )
        assert hosted.batcher is not None
        low = is_low_priority(context)
        with generation_span.submitting(span):
            run = asyncio.ensure_future(
                hosted.batcher.submit(job, deadline_of(context), low_priority=low)
            )
        # Pieces are queued on the loop before the run's result, so None comes last.
        run.add_done_callback(lambda _: pieces.put_nowait(None))
        try:
            while (piece := await pieces.get()) is not None:
                out = scanner.feed(piece.text)
                if out:
                    yield _Piece(out, piece.generated_tokens)
                if scanner.stopped:
                    job.stop_reached = True
                    job.cancelled.set()
                    break
            usage = await run
            if tail := scanner.flush():
                yield _Piece(tail, usage.generated_tokens)
            yield _End(usage)
        finally:
            generation_span.end(span, usage)
            job.cancelled.set()  # no effect once finished; stops a generation still running
            if not run.done():
                run.cancel()
            elif not run.cancelled():
                run.exception()  # already failed (overload, deadline): seen, not logged


def _fill(message: pb.SummarizeStreamResponse | pb.GenerateResponse, item: _Piece | _End) -> None:
    """A streamed message's text and token count, or on the last one its usage."""
    if isinstance(item, _End):
        message.usage.CopyFrom(usage_to_pb(item.usage))
        message.generated_tokens = item.usage.generated_tokens
    else:
        message.text = item.text
        message.generated_tokens = item.generated_tokens
