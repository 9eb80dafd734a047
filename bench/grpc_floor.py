"""What a classifier call costs before any model runs, and the ceiling that puts on the
served figures.

An empty classifier (grpcio's asyncio server, the real messages, a fixed answer and no
model, batching or bookkeeping) answers the benchmark's own gRPC caller in a closed
loop; the CPU time of its process and of the caller's, per call, are the least any
Python gRPC service and this load generator can cost. With the model's CPU per text at
its raw limit, two cores cannot serve more than ``cores / (model + server + client)``
texts per second, whatever the batching: that ceiling, as a ratio to the eager raw
limit, is what the served ratios are to be read against.

Run as ``python -m bench.grpc_floor PORT`` it is that empty server.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from grpc import aio

from bench.load import closed_loop
from bench.process_cpu import process_cpu_seconds
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc

Call = Callable[[int], Awaitable[object]]
CallFactory = Callable[["classifier_pb2_grpc.ClassifierServiceAsyncStub"], Call]
"""Makes the benchmark's gRPC caller on a stub (``bench.classifier.grpc_caller``)."""

CONCURRENCY = 32
CALLS = 2000
"""Calls per window: long enough for the CPU clocks' 10 ms ticks to count."""


SERVICE = pb.DESCRIPTOR.services_by_name["ClassifierService"].full_name


async def _classify(
    request: pb.ClassifyRequest, context: aio.ServicerContext[object, object]
) -> pb.ClassifyResponse:
    """Every text gets one fixed label: gRPC and protobuf, nothing else."""
    label = pb.Classification(labels=[pb.LabelScore(label="positive", score=1.0)])
    return pb.ClassifyResponse(
        model=request.model, version=request.version, results=[label] * len(request.texts)
    )


async def _serve(port: int) -> None:
    classify = grpc.unary_unary_rpc_method_handler(
        _classify,
        request_deserializer=pb.ClassifyRequest.FromString,
        response_serializer=pb.ClassifyResponse.SerializeToString,
    )
    server = aio.server(
        handlers=[grpc.method_handlers_generic_handler(SERVICE, {"Classify": classify})]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


@contextmanager
def empty_classifier(port: int) -> Iterator[int]:
    """The empty classifier in a process of its own; yields its pid."""
    process = subprocess.Popen([sys.executable, "-m", "bench.grpc_floor", str(port)])
    try:
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class CallCost:
    calls_per_s: float
    server_cpu_ms: float
    """CPU time of the empty server's process per call."""
    client_cpu_ms: float
    """CPU time of this process (the load generator) per call."""


async def call_cost(address: str, pid: int, make_call: CallFactory) -> CallCost:
    """One closed-loop window against the empty server at ``address`` (process ``pid``)."""
    async with aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=60)
        call = make_call(classifier_pb2_grpc.ClassifierServiceStub(channel))
        await closed_loop(call, CONCURRENCY, CALLS // 4)  # warm the connection and the server
        server, client = process_cpu_seconds(pid), process_cpu_seconds(os.getpid())
        result = await closed_loop(call, CONCURRENCY, CALLS)
        return CallCost(
            calls_per_s=result.per_second,
            server_cpu_ms=1000 * (process_cpu_seconds(pid) - server) / CALLS,
            client_cpu_ms=1000 * (process_cpu_seconds(os.getpid()) - client) / CALLS,
        )


def ceiling(cores: int, model_texts_per_s: float, cost: CallCost) -> float:
    """Texts per second two cores could serve at most: each text costs the model's CPU at
    its raw limit plus one call's gRPC floor on both sides."""
    model_ms = 1000 * cores / model_texts_per_s
    return 1000 * cores / (model_ms + cost.server_cpu_ms + cost.client_cpu_ms)


def medians(costs: list[CallCost]) -> dict[str, float]:
    return {
        "calls_per_s": statistics.median(c.calls_per_s for c in costs),
        "server_cpu_ms_per_call": statistics.median(c.server_cpu_ms for c in costs),
        "client_cpu_ms_per_call": statistics.median(c.client_cpu_ms for c in costs),
    }


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
