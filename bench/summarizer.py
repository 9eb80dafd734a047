"""The summarizer: time to first piece and tokens per second, direct ``generate`` versus
the service's gRPC stream, same model, same options, same thread count."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import grpc

from services.summarizer.model import CausalLmSummarizer, GenerationJob, GenerationOptions
from switchyard.processes import service_process
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from switchyard.summarizer.v1 import summarizer_pb2_grpc

TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889 as the centrepiece of the 1889 World's Fair."
)
MAX_NEW_TOKENS = 48


def _direct_once(summarizer: CausalLmSummarizer) -> tuple[float, float]:
    """(time to first piece in s, tokens per second) of one in-process generation."""
    first: list[float] = []
    started = time.perf_counter()

    def on_piece(piece: str) -> None:
        if not first:
            first.append(time.perf_counter() - started)

    usage = summarizer.generate(
        GenerationJob(TEXT, GenerationOptions(max_new_tokens=MAX_NEW_TOKENS), on_piece)
    )
    return first[0], usage.generated_tokens / (time.perf_counter() - started)


def _grpc_once(stub: summarizer_pb2_grpc.SummarizerServiceStub) -> tuple[float, float]:
    """(time to first piece in s, tokens per second) of one generation over the stream."""
    request = pb.SummarizeStreamRequest(
        text=TEXT, options=pb.GenerationOptions(max_new_tokens=MAX_NEW_TOKENS)
    )
    started = time.perf_counter()
    first = 0.0
    generated = 0
    for message in stub.SummarizeStream(request, timeout=300):
        if message.text and not first:
            first = time.perf_counter() - started
        if message.HasField("usage"):
            generated = message.usage.generated_tokens
    return first, generated / (time.perf_counter() - started)


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, float]:
    """Direct and gRPC generations alternate, so each pair sees the same machine speed."""
    runs = 4 if quick else 8
    summarizer = CausalLmSummarizer(str(models_dir / "summarizer" / "v1"))
    summarizer.warm_up()
    direct: list[tuple[float, float]] = []
    over_grpc: list[tuple[float, float]] = []
    with (
        service_process("summarizer", torch_threads=str(torch_threads)) as service,
        grpc.insecure_channel(service.address) as channel,
    ):
        stub = summarizer_pb2_grpc.SummarizerServiceStub(channel)
        _grpc_once(stub)  # warm the path
        for _ in range(runs):
            direct.append(_direct_once(summarizer))
            over_grpc.append(_grpc_once(stub))
    ttft_ratios = [g[0] / d[0] for d, g in zip(direct, over_grpc, strict=True)]
    rate_ratios = [g[1] / d[1] for d, g in zip(direct, over_grpc, strict=True)]
    return {
        "direct_ttft_ms": 1000 * statistics.median(d[0] for d in direct),
        "grpc_ttft_ms": 1000 * statistics.median(g[0] for g in over_grpc),
        "ttft_ratio": statistics.median(ttft_ratios),
        "direct_tokens_per_s": statistics.median(d[1] for d in direct),
        "grpc_tokens_per_s": statistics.median(g[1] for g in over_grpc),
        "tokens_per_s_ratio": statistics.median(rate_ratios),
    }
