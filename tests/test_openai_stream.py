"""OpenAI's streamed completions: the chunks made from a generation's messages (pure, no
gateway), the bodies' checks, and, in front of a scripted backend, what the wire carries
when the generation pauses (keep-alive lines the SDK's parser reads as nothing) or fails
mid-stream (one last event with the error envelope, which the SDK raises)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import openai
import pytest
from openai._streaming import SSEDecoder
from pydantic import ValidationError

from gateway.errors.validation import param_of
from gateway.replay.events import ReplayEvent
from gateway.routes.openai_schemas import ChatBody, CompletionBody
from gateway.routes.openai_stream import DONE, Completion, CompletionChunks, Payload
from gateway.routes.openai_stream import payload_event as kept
from gateway.routes.replay_stream import KeepAlive, sse_event
from switchyard.redis_server import LocalRedis
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, gateway_process

pytestmark = pytest.mark.timeout(120)

HEARTBEAT_S = "0.05"


def piece(text: str, index: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(
        model="m", version="v1", text=text, index=index, generated_tokens=index + 1
    )


def last(
    index: int, generated: int, reason: pb.FinishReason.ValueType = pb.FINISH_REASON_LENGTH
) -> pb.GenerateResponse:
    usage = pb.Usage(prompt_tokens=5, generated_tokens=generated, finish_reason=reason)
    return pb.GenerateResponse(
        model="m", version="v1", index=index, generated_tokens=generated, usage=usage
    )


def test_a_chat_streams_role_then_text_then_finish_then_usage() -> None:
    chunks = CompletionChunks(Completion("chatcmpl-1", True, 7, include_usage=True))
    messages = (piece("Hel", 0), piece("", 1), piece("lo", 2), last(3, 3))
    made = [chunk for message in messages for chunk in chunks.of(message)]
    deltas = [c["choices"][0]["delta"] for c in made[:-1]]
    assert deltas == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}, {}]
    assert [c["choices"][0]["finish_reason"] for c in made[:-1]] == [None, None, "length"]
    assert made[-1]["choices"] == []
    assert made[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert all(c["usage"] is None for c in made[:-1])
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in made} == {
        ("chatcmpl-1", "chat.completion.chunk", 7, "m")
    }


def test_a_completion_streams_text_choices_and_no_usage_unless_asked() -> None:
    chunks = CompletionChunks(Completion("cmpl-1", False, 7, include_usage=False))
    made = [*chunks.of(piece("A", 0)), *chunks.of(last(1, 1, pb.FINISH_REASON_STOP))]
    assert [c["choices"][0]["text"] for c in made] == ["A", ""]
    assert [c["choices"][0]["finish_reason"] for c in made] == [None, "stop"]
    assert all("usage" not in c and c["object"] == "text_completion" for c in made)


def test_a_generation_of_nothing_still_names_the_assistant() -> None:
    chunks = CompletionChunks(Completion("chatcmpl-1", True, 7, include_usage=False))
    made = chunks.of(last(0, 0, pb.FINISH_REASON_STOP))
    assert [c["choices"][0]["delta"] for c in made] == [{"role": "assistant", "content": ""}, {}]


def payload_event(payload: Payload, index: int) -> ReplayEvent:
    return dataclasses.replace(kept(payload), index=index)


def test_keep_alive_lines_between_events_are_no_events_to_the_sdks_parser() -> None:
    wire = [
        sse_event("c", payload_event({"n": 0}, 0)).encode(),
        KeepAlive().encode(),
        KeepAlive().encode(),
        sse_event("c", payload_event({"n": 1}, 1)).encode(),
        KeepAlive().encode(),
        sse_event("c", payload_event(DONE, 2)).encode(),
    ]
    events = list(SSEDecoder().iter_bytes(iter(wire)))
    assert [(e.id, e.data) for e in events] == [
        ("c.0", '{"n":0}'),
        ("c.1", '{"n":1}'),
        ("c.2", "[DONE]"),
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": []}, "tools"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages.0.content",
        ),
    ],
)
def test_an_unsupported_field_or_value_is_refused_naming_it(
    body: dict[str, Any], param: str
) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(ValidationError) as refused:
        ChatBody.model_validate_json(json.dumps(chat))
    assert param_of(refused.value.errors()) == param


def test_neutral_values_are_accepted_and_the_options_read_as_the_client_takes_them() -> None:
    chat = ChatBody.model_validate_json(
        json.dumps(
            {
                "model": "m",
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    },
                ],
                "presence_penalty": 0,
                "frequency_penalty": 0.0,
                "logprobs": False,
                "n": 1,
                "response_format": {"type": "text"},
                "stop": "END",
                "max_tokens": 9,
                "max_completion_tokens": 9,
                "user": "u-1",
            }
        )
    )
    chat.check()
    assert chat.source() == {"messages": [("system", "Be brief."), ("user", "a\nb")]}
    assert chat.generation()["stop"] == ["END"] and chat.requested_tokens()[1] == 9
    prompt = CompletionBody.model_validate_json('{"model": "m", "prompt": ["only one"]}')
    assert prompt.source() == {"prompt": "only one"}


def test_two_different_token_limits_or_stream_options_without_a_stream_are_refused() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    both = ChatBody.model_validate({**chat, "max_tokens": 4, "max_completion_tokens": 5})
    with pytest.raises(Exception, match="max_completion_tokens") as differ:
        both.check()
    assert getattr(differ.value, "param", None) == "max_tokens"
    options = ChatBody.model_validate({**chat, "stream_options": {"include_usage": True}})
    with pytest.raises(Exception, match="only allowed when stream is true"):
        options.check()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def scripted_gateway(
    scripted: ScriptedBackend, redis_server: LocalRedis
) -> Iterator[GatewayProcess]:
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    with gateway_process(
        backends, redis_url=redis_server.url, sse_heartbeat_s=HEARTBEAT_S
    ) as gateway:
        yield gateway


CHAT = {
    "model": "scripted",
    "messages": [{"role": "user", "content": "x"}],
    "stream": True,
}


def test_a_failure_mid_stream_ends_it_with_the_error_envelope_the_sdk_raises(
    scripted: ScriptedBackend, scripted_gateway: GatewayProcess, client_key: str
) -> None:
    scripted.script.hold_streams = False
    scripted.script.stream_failure = grpc.StatusCode.UNAVAILABLE
    headers = {"Authorization": f"Bearer {client_key}"}
    with httpx.stream(
        "POST", f"{scripted_gateway.url}/v1/chat/completions", json=CHAT, headers=headers
    ) as reply:
        assert reply.status_code == 200
        events = list(SSEDecoder().iter_bytes(reply.iter_bytes()))
    failed = events[-1]
    generation = (events[0].id or "").rpartition(".")[0]
    assert generation.startswith("gen_"), "event ids name the generation, for resume"
    assert [e.id for e in events] == [f"{generation}.{n}" for n in range(4)]
    error = json.loads(failed.data)["error"]
    assert (error["code"], error["type"]) == ("unavailable", "server_error")
    assert error["request_id"] == reply.headers["x-request-id"]
    with (
        openai.OpenAI(
            base_url=f"{scripted_gateway.url}/v1", api_key=client_key, max_retries=0
        ) as client,
        pytest.raises(openai.APIError, match="unavailable") as raised,
    ):
        for _ in client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass
    assert isinstance(raised.value.body, dict) and raised.value.body["code"] == "unavailable"


def test_keep_alive_lines_while_the_model_pauses_leave_the_stream_readable(
    scripted: ScriptedBackend, scripted_gateway: GatewayProcess, client_key: str
) -> None:
    script = scripted.script
    script.hold_streams = True
    script.release.clear()
    script.stream_failure = grpc.StatusCode.UNAVAILABLE
    headers = {"Authorization": f"Bearer {client_key}"}
    wire: list[bytes] = []
    try:
        with httpx.stream(
            "POST", f"{scripted_gateway.url}/v1/chat/completions", json=CHAT, headers=headers
        ) as reply:
            for line in reply.iter_lines():
                wire.append(line.encode() + b"\n")
                if line.startswith(": ping"):
                    script.release.set()  # pinged while held: let the stream end
    finally:
        script.release.set()
        script.hold_streams = False
    assert any(line.startswith(b": ping") for line in wire)
    events = list(SSEDecoder().iter_bytes(iter(wire)))
    assert all(event.data for event in events), events  # no empty event dispatched
    assert len(events) == 4
