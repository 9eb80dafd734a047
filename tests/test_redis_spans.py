"""The gateway's Redis spans (``switchyard.spans.redis_calls``) on a real redis-server:
one client span per command or pipeline made under a recorded span, none otherwise,
and never a command's arguments."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as redis
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, StatusCode

from switchyard.spans import redis_calls
from switchyard.spans.recording import RecordedSpan, TracerProvider
from switchyard.spans.sampling import SpanSampler


@pytest.fixture
def recorded() -> Iterator[tuple[TracerProvider, list[RecordedSpan]]]:
    spans: list[RecordedSpan] = []
    provider = TracerProvider(SpanSampler.from_environment({}), RandomIdGenerator(), spans.append)
    redis_calls.instrument(provider)
    try:
        yield provider, spans
    finally:
        redis_calls.uninstrument()


async def test_commands_and_pipelines_under_a_recorded_span(
    client: redis.Redis, recorded: tuple[TracerProvider, list[RecordedSpan]]
) -> None:
    provider, spans = recorded
    await client.set("spans:background", "not traced")  # no span current: no span
    secret = "caller-text-never-in-a-span"
    with provider.get_tracer("t").start_as_current_span("request") as request:
        await client.set("spans:key", secret)
        assert await client.get("spans:key") == secret.encode()
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr("spans:count")
            pipe.expire("spans:count", 60)
            await pipe.execute()
        with pytest.raises(redis.ResponseError):
            await client.hset("spans:key", "field", "1")  # a string is not a hash
    names = [s.name for s in spans]
    assert names == ["SET", "GET", "MULTI", "HSET", "request"]
    parent = request.get_span_context()
    for span in spans[:-1]:
        assert span.kind is SpanKind.CLIENT and span.parent == parent
        assert span.attributes["db.system.name"] == "redis"
        assert span.attributes["db.operation.name"] == span.name
        assert span.attributes["server.port"] == client.connection_pool.connection_kwargs["port"]
        assert secret not in repr(span.attributes)
    assert spans[2].attributes["db.operation.batch.size"] == 2
    assert spans[3].status_code is StatusCode.ERROR
    assert spans[3].attributes["error.type"] == "ResponseError"


async def test_an_unsampled_request_makes_no_redis_span(
    client: redis.Redis, recorded: tuple[TracerProvider, list[RecordedSpan]]
) -> None:
    provider, spans = recorded
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(0x1F, 0x2F, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    with trace.use_span(unsampled):
        await client.set("spans:unsampled", "1")
    assert spans == []
    redis_calls.uninstrument()
    with provider.get_tracer("t").start_as_current_span("after"):
        await client.get("spans:unsampled")
    assert [s.name for s in spans] == ["after"]  # redis-py's own methods are back
