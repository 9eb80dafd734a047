"""The summarizer over real gRPC, in its own process, with SmolLM2-135M-Instruct."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.summarizer.agreement import NEXT_TOKEN_FLOOR
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from switchyard.summarizer.v1 import summarizer_pb2_grpc
from tests.support import SUMMARIZER, ServiceProcess, details, service_process

Stub = summarizer_pb2_grpc.SummarizerServiceStub
# The default version (CTranslate2); v1 (transformers) is the reference it was made from.
DEFAULT = {"model": "summarizer", "version": "v1-ct2"}
V1 = {"model": "summarizer", "version": "v1"}
EIFFEL = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889 as the centrepiece of the 1889 World's Fair. Although it was criticised "
    "by some of France's leading artists at first, it has become a global cultural icon of "
    "France and one of the most recognisable structures in the world."
)
GREEDY = pb.GenerationOptions(max_new_tokens=40, seed=7)


@pytest.fixture
def stub(summarizer: ServiceProcess) -> Iterator[Stub]:
    with grpc.insecure_channel(summarizer.address) as channel:
        yield Stub(channel)


def test_the_stream_joined_equals_the_unary_summary_and_names_the_tower(stub: Stub) -> None:
    whole = stub.Summarize(pb.SummarizeRequest(text=EIFFEL, options=GREEDY), timeout=120)
    pieces = list(
        stub.SummarizeStream(pb.SummarizeStreamRequest(text=EIFFEL, options=GREEDY), timeout=120)
    )
    assert len(pieces) > 3, "a stream sends several messages, not one"
    assert "".join(p.text for p in pieces) == whole.summary
    assert "Eiffel" in whole.summary
    assert [p.index for p in pieces] == list(range(len(pieces)))
    last = pieces[-1]
    assert last.HasField("usage") and not any(p.HasField("usage") for p in pieces[:-1])
    assert last.usage.generated_tokens == whole.usage.generated_tokens > 0
    assert last.usage.prompt_tokens > 50
    assert last.usage.time_to_first_token.ToNanoseconds() > 0
    assert last.usage.finish_reason in (pb.FINISH_REASON_STOP, pb.FINISH_REASON_LENGTH)
    assert (whole.model, whole.version) == ("summarizer", "v1-ct2")


def test_the_default_version_streams_the_pieces_of_the_reference(stub: Stub) -> None:
    def pieces(version: str) -> list[str]:
        request = pb.SummarizeStreamRequest(text=EIFFEL, version=version, options=GREEDY)
        return [p.text for p in stub.SummarizeStream(request, timeout=120) if p.text]

    assert pieces("v1-ct2") == pieces("v1") == pieces("v1-lookup")
    listed = stub.ListModels(pb.ListModelsRequest(), timeout=30).models[0]
    runtimes = {
        v.version: (v.annotations["runtime"], v.annotations["quantization"], v.is_default)
        for v in listed.versions
    }
    assert runtimes == {
        "v1": ("transformers", "none", False),
        "v1-ct2": ("ctranslate2", "none", True),
        "v1-ct2-int8": ("ctranslate2", "int8", False),
        "v1-lookup": ("transformers", "none", False),
    }
    figures = {v.version: dict(v.annotations) for v in listed.versions}
    assert "agreement_greedy_equal" not in figures["v1"], "the reference agrees with nothing"
    assert figures["v1-lookup"]["prompt_lookup_tokens"] == "10"
    assert "prompt_lookup_tokens" not in figures["v1"]
    assert figures["v1-ct2"]["agreement_greedy_equal"] == "1"
    assert float(figures["v1-ct2-int8"]["agreement_next_token"]) >= NEXT_TOKEN_FLOOR


def test_max_new_tokens_bounds_the_generation(stub: Stub) -> None:
    reply = stub.Summarize(
        pb.SummarizeRequest(text=EIFFEL, options=pb.GenerationOptions(max_new_tokens=5)),
        timeout=120,
    )
    assert reply.usage.generated_tokens == 5
    assert reply.usage.finish_reason == pb.FINISH_REASON_LENGTH


def test_a_seeded_sample_repeats(stub: Stub) -> None:
    options = pb.GenerationOptions(max_new_tokens=20, temperature=0.9, top_p=0.9, seed=1234)
    first = stub.Summarize(pb.SummarizeRequest(text=EIFFEL, options=options), timeout=120)
    second = stub.Summarize(pb.SummarizeRequest(text=EIFFEL, options=options), timeout=120)
    assert first.summary == second.summary


def test_a_cancelled_stream_stops_generating_within_a_couple_of_tokens(
    summarizer: ServiceProcess, stub: Stub
) -> None:
    cancelled = {**DEFAULT, "finish_reason": "cancelled"}
    before = summarizer.metric("switchyard_generations_total", cancelled)
    after_cancel_before = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT)
    call = stub.SummarizeStream(
        pb.SummarizeStreamRequest(text=EIFFEL, options=pb.GenerationOptions(max_new_tokens=400)),
        timeout=120,
    )
    stream = iter(call)
    next(stream), next(stream)
    call.cancel()  # type: ignore[no-untyped-call]
    summarizer.wait_metric("switchyard_generations_total", cancelled, before + 1)
    extra = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT) - after_cancel_before
    assert extra <= 2


def test_an_expired_deadline_ends_the_generation(summarizer: ServiceProcess, stub: Stub) -> None:
    cancelled = {**DEFAULT, "finish_reason": "cancelled"}
    request = pb.SummarizeStreamRequest(
        text=EIFFEL, options=pb.GenerationOptions(max_new_tokens=80)
    )
    # How long this generation takes here and now; the deadline is set half way through it,
    # long after generation starts (this service is idle: the request never waits in a queue).
    last = list(stub.SummarizeStream(request, timeout=120))[-1]
    half_way = last.usage.generation_time.ToNanoseconds() / 2e9
    before = summarizer.metric("switchyard_generations_total", cancelled)
    with pytest.raises(grpc.RpcError) as expired:
        list(stub.SummarizeStream(request, timeout=half_way))
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    summarizer.wait_metric("switchyard_generations_total", cancelled, before + 1)


@pytest.mark.parametrize(
    ("options", "text", "mentions"),
    [
        (pb.GenerationOptions(max_new_tokens=100_000), EIFFEL, "max_new_tokens_cap"),
        (pb.GenerationOptions(temperature=5), EIFFEL, "temperature"),
        (pb.GenerationOptions(temperature=0.5, top_p=0), EIFFEL, "top_p"),
        (pb.GenerationOptions(), "  ", "text is empty"),
        (pb.GenerationOptions(), "x" * 4001, "max_input_chars"),
    ],
)
def test_bad_options_and_texts_are_invalid_arguments(
    stub: Stub, options: pb.GenerationOptions, text: str, mentions: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.Summarize(pb.SummarizeRequest(text=text, options=options), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert mentions in details(refused.value)


def test_a_flood_beyond_the_queue_is_refused_while_accepted_work_finishes(
    prepared_models: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(
        '[summarizer]\ndefault_model = "summarizer"\n'
        '[summarizer.models.summarizer]\ndefault_version = "v1"\n'
        "[summarizer.models.summarizer.versions.v1]\n"
        f'weights = "{prepared_models / "summarizer" / "v1"}"\n'
        "max_batch_size = 1\nmax_queue_delay_ms = 0\nmax_queue_size = 1\n"
    )
    with (
        service_process("summarizer", registry) as service,
        grpc.insecure_channel(service.address) as channel,
    ):
        stub = Stub(channel)
        long = pb.SummarizeStreamRequest(
            text=EIFFEL, options=pb.GenerationOptions(max_new_tokens=300)
        )
        running = stub.SummarizeStream(long, timeout=120)
        first = iter(running)
        next(first)  # generating now: the queue is empty again
        queued = stub.Summarize.future(
            pb.SummarizeRequest(text=EIFFEL, options=pb.GenerationOptions(max_new_tokens=3)),
            timeout=120,
        )
        service.wait_metric("switchyard_queue_depth", V1, 1)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Summarize(pb.SummarizeRequest(text=EIFFEL), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        running.cancel()  # type: ignore[no-untyped-call]
        assert queued.result().usage.generated_tokens == 3


def test_health_and_listing_answer_while_a_generation_runs(
    summarizer: ServiceProcess, stub: Stub
) -> None:
    call = stub.SummarizeStream(
        pb.SummarizeStreamRequest(text=EIFFEL, options=pb.GenerationOptions(max_new_tokens=300)),
        timeout=120,
    )
    stream = iter(call)
    next(stream)  # the worker thread is generating now
    with grpc.insecure_channel(summarizer.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=SUMMARIZER), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        listed = Stub(channel).ListModels(pb.ListModelsRequest(), timeout=30)
        assert [m.name for m in listed.models] == ["summarizer"]
    assert next(stream).index == 1  # and the stream went on meanwhile
    call.cancel()  # type: ignore[no-untyped-call]
