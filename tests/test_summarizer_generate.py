"""The summarizer's Generate RPC over real gRPC: conversations through the model's chat
template, raw prompts, stop sequences, token counts, and what a cancel frees."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from services.summarizer.generation import chat_messages
from switchyard.client import SummarizerClient
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from switchyard.summarizer.v1 import summarizer_pb2_grpc
from tests.support import ServiceProcess

pytestmark = pytest.mark.timeout(300)

Stub = summarizer_pb2_grpc.SummarizerServiceStub
DEFAULT = {"model": "summarizer", "version": "v1-ct2"}
EIFFEL = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889 as the centrepiece of the 1889 World's Fair."
)
TOKENS = 32


@pytest.fixture
def client(summarizer: ServiceProcess) -> Iterator[SummarizerClient]:
    with SummarizerClient(summarizer.address) as made:
        yield made


def conversation(text: str) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in chat_messages(text)]


def joined(messages: list[pb.GenerateResponse]) -> str:
    return "".join(m.text for m in messages)


def test_a_conversation_goes_through_the_chat_template_as_a_summary_does(
    client: SummarizerClient,
) -> None:
    summary = client.summarize(EIFFEL, max_new_tokens=TOKENS)
    messages = list(client.generate(messages=conversation(EIFFEL), max_new_tokens=TOKENS))
    assert joined(messages) == summary.summary
    last = messages[-1]
    assert last.HasField("usage") and not any(m.HasField("usage") for m in messages[:-1])
    assert last.usage.prompt_tokens == summary.usage.prompt_tokens
    assert last.usage.generated_tokens == summary.usage.generated_tokens
    counts = [m.generated_tokens for m in messages]
    assert counts == sorted(counts) and counts[0] >= 1
    assert counts[-1] == last.usage.generated_tokens
    assert [m.index for m in messages] == list(range(len(messages)))


def test_a_prompt_is_continued_as_it_is_without_the_chat_template(
    client: SummarizerClient,
) -> None:
    messages = list(client.generate(prompt="The capital of France is", max_new_tokens=6))
    usage = messages[-1].usage
    assert usage.prompt_tokens < 10, "the chat template's system turn alone is longer"
    assert usage.generated_tokens == 6
    assert usage.finish_reason == pb.FINISH_REASON_LENGTH
    assert joined(messages).strip()


def test_a_stop_sequence_ends_the_text_before_it_and_the_generation_there(
    client: SummarizerClient,
) -> None:
    whole = list(client.generate(messages=conversation(EIFFEL), max_new_tokens=TOKENS))
    text = joined(whole)
    words = text.split()
    assert len(words) > 6, text
    stop = " " + words[4]  # a word in the middle, with the space before it
    cut = text.index(stop)
    stopped = list(
        client.generate(messages=conversation(EIFFEL), stop=[stop], max_new_tokens=TOKENS)
    )
    assert joined(stopped) == text[:cut]
    usage = stopped[-1].usage
    assert usage.finish_reason == pb.FINISH_REASON_STOP
    assert usage.generated_tokens < whole[-1].usage.generated_tokens


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (pb.GenerateRequest(), "prompt or a conversation"),
        (pb.GenerateRequest(prompt="   "), "prompt is empty"),
        (
            pb.GenerateRequest(
                conversation=pb.Conversation(messages=[pb.ChatMessage(role="tool", content="x")])
            ),
            "messages[0].role",
        ),
        (pb.GenerateRequest(prompt="x", options=pb.GenerationOptions(stop=["a"] * 5)), "limit"),
        (pb.GenerateRequest(prompt="x", options=pb.GenerationOptions(stop=[""])), "stop[0]"),
    ],
)
def test_bad_requests_are_refused_with_invalid_argument(
    summarizer: ServiceProcess, request_: pb.GenerateRequest, words: str
) -> None:
    with (
        grpc.insecure_channel(summarizer.address) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        list(Stub(channel).Generate(request_, timeout=60))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (refused.value.details() or "")


def test_a_cancelled_generation_frees_the_worker(summarizer: ServiceProcess) -> None:
    cancelled = {**DEFAULT, "finish_reason": "cancelled"}
    before = summarizer.metric("switchyard_generations_total", cancelled)
    after_cancel_before = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT)
    with grpc.insecure_channel(summarizer.address) as channel:
        request = pb.GenerateRequest(
            prompt="Once upon a time", options=pb.GenerationOptions(max_new_tokens=400)
        )
        call = Stub(channel).Generate(request, timeout=120)
        stream = iter(call)
        next(stream), next(stream)
        assert summarizer.metric("switchyard_generations_running", DEFAULT) == 1
        call.cancel()  # type: ignore[no-untyped-call]
    summarizer.wait_metric("switchyard_generations_total", cancelled, before + 1)
    assert summarizer.metric("switchyard_generations_running", DEFAULT) == 0
    extra = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT) - after_cancel_before
    assert extra <= 2
