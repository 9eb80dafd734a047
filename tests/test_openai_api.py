"""The gateway's OpenAI-compatible API driven by the ``openai`` SDK, unchanged, as users
drive it (sync and async), in front of the real summarizer and a real Redis: chat
completions and completions, whole and streamed, the model list, and the SDK's error
classes for what the gateway refuses."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from switchyard.client import SummarizerClient
from switchyard.redis_server import LocalRedis
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from tests.conftest import make_key
from tests.support import GatewayProcess, ServiceProcess

pytestmark = pytest.mark.timeout(300)

MODEL = "summarizer"
DEFAULT = {"model": MODEL, "version": "v1-ct2"}
CANCELLED = {**DEFAULT, "finish_reason": "cancelled"}
TOKENS = 12
QUESTION = "Name three things a city needs to run a bicycle hire scheme."
PROMPT = "The three primary colours are"


def sdk(gateway: GatewayProcess, key: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, **options)


@pytest.fixture
def client(gateway: GatewayProcess, client_key: str) -> Iterator[openai.OpenAI]:
    with sdk(gateway, client_key) as made:
        yield made


@pytest.fixture
def service(summarizer: ServiceProcess) -> Iterator[SummarizerClient]:
    """The summarizer itself, over gRPC: what the gateway's answers are compared with."""
    with SummarizerClient(summarizer.address) as made:
        yield made


def generated(messages: list[pb.GenerateResponse]) -> tuple[str, pb.Usage]:
    return "".join(m.text for m in messages), messages[-1].usage


def test_a_chat_completion_is_the_services_generation_whole_and_streamed(
    client: openai.OpenAI, service: SummarizerClient
) -> None:
    expected, usage = generated(
        list(service.generate(messages=[("user", QUESTION)], max_new_tokens=TOKENS))
    )
    messages: Any = [{"role": "user", "content": QUESTION}]
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0
    )
    assert raw.headers["x-model-version"] == "v1-ct2"
    whole = raw.parse()
    assert whole.object == "chat.completion" and whole.id.startswith("chatcmpl-")
    assert whole.model == MODEL and whole.system_fingerprint == "v1-ct2"
    (choice,) = whole.choices
    assert choice.message.role == "assistant" and choice.message.content == expected
    assert choice.finish_reason == ("length" if usage.generated_tokens == TOKENS else "stop")
    assert whole.usage is not None
    assert whole.usage.completion_tokens == usage.generated_tokens
    assert whole.usage.prompt_tokens == usage.prompt_tokens
    assert whole.usage.total_tokens == usage.prompt_tokens + usage.generated_tokens

    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_completion_tokens=TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id != whole.id
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    *pieces, last_choice, with_usage = chunks
    assert pieces[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in pieces) == expected
    assert all(c.choices[0].finish_reason is None for c in pieces)
    assert last_choice.choices[0].finish_reason == choice.finish_reason
    assert with_usage.choices == [] and with_usage.usage is not None
    assert with_usage.usage.completion_tokens == usage.generated_tokens


async def test_the_async_sdk_completes_a_prompt_whole_and_streamed(
    gateway: GatewayProcess, client_key: str, service: SummarizerClient
) -> None:
    expected, usage = generated(list(service.generate(prompt=PROMPT, max_new_tokens=8)))
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=client_key, max_retries=0
    ) as client:
        whole = await client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0
        )
        assert whole.object == "text_completion" and whole.id.startswith("cmpl-")
        assert whole.choices[0].text == expected
        assert whole.usage is not None
        assert whole.usage.completion_tokens == usage.generated_tokens == 8
        assert whole.choices[0].finish_reason == "length"

        stream = await client.completions.create(
            model=MODEL,
            prompt=[PROMPT],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    *pieces, end, with_usage = chunks
    assert "".join(c.choices[0].text for c in pieces) == expected
    assert end.choices[0].finish_reason == "length"
    assert with_usage.choices == [] and with_usage.usage is not None
    assert with_usage.usage.completion_tokens == 8


def test_a_stream_without_usage_asked_ends_with_the_finish_reason(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
        max_tokens=4,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)


def test_the_model_list_reads_as_openais(client: openai.OpenAI) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert {"summarizer", "sentiment", "ner"} <= set(listed)
    summarizer = listed["summarizer"]
    assert summarizer.object == "model" and summarizer.owned_by == "switchyard"
    assert summarizer.created == 0
    extra = summarizer.model_extra or {}
    assert extra["service"] == "summarizer" and "v1-ct2" in extra["versions"]
    one = client.models.retrieve("summarizer")
    assert (one.id, one.owned_by) == ("summarizer", "switchyard")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_what_the_gateway_refuses_raises_the_sdks_error_classes(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    messages: Any = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError) as two:
        client.chat.completions.create(model=MODEL, messages=messages, n=2)
    assert two.value.param == "n" and two.value.code == "invalid_argument"
    assert two.value.type == "invalid_request_error"
    assert two.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(
            model=MODEL, messages=messages, extra_body={"tools": [{"type": "function"}]}
        )
    assert tools.value.param == "tools" and "tools" in tools.value.message
    with pytest.raises(openai.BadRequestError) as image:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ],
        )
    assert image.value.param == "messages.0.content"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
    assert unknown.value.type == "not_found_error"
    with (
        sdk(gateway, "sy_not-a-key") as stranger,
        pytest.raises(openai.AuthenticationError) as bad_key,
    ):
        stranger.chat.completions.create(model=MODEL, messages=messages)
    assert bad_key.value.type == "authentication_error"
    assert bad_key.value.response.headers["x-should-retry"] == "false"


def test_a_spent_token_budget_is_a_rate_limit_error_the_sdk_does_not_retry(
    gateway: GatewayProcess, redis_server: LocalRedis
) -> None:
    key = make_key(redis_server.url, "client", "free", tokens_per_day=1)
    sent: list[str] = []
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda r: sent.append(r.url.path)]})
    messages: Any = [{"role": "user", "content": "Hi"}]
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, http_client=http) as client:
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2)
        with pytest.raises(openai.RateLimitError) as spent:
            client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2)
    headers = spent.value.response.headers
    assert headers["retry-after"] == "3600" and headers["x-should-retry"] == "false"
    assert spent.value.type == "rate_limit_error" and "budget" in spent.value.message
    assert sent == ["/v1/chat/completions"] * 2  # the SDK (2 retries by default) sent it once


def test_a_per_minute_limit_is_a_rate_limit_error_worth_retrying(
    gateway: GatewayProcess, redis_server: LocalRedis
) -> None:
    key = make_key(redis_server.url, "client", "free", per_minute=1)
    with sdk(gateway, key) as client:
        client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2)
        with pytest.raises(openai.RateLimitError) as limited:
            client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2)
    headers = limited.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60 and headers["x-should-retry"] == "true"


def test_a_stop_sequence_and_a_pinned_version_reach_the_generation(
    client: openai.OpenAI,
) -> None:
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS)
    text = whole.choices[0].text
    words = text.split()
    assert len(words) > 3, text
    stop = " " + words[2]
    stopped = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=TOKENS, stop=[stop, "never-seen-stop"]
    )
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    pinned = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=2, extra_headers={"X-Model-Version": "v1-ct2-int8"}
    )
    assert pinned.system_fingerprint == "v1-ct2-int8"


def test_a_client_that_leaves_a_whole_completion_cancels_its_generation(
    gateway: GatewayProcess, client_key: str, summarizer: ServiceProcess
) -> None:
    before = summarizer.metric("switchyard_generations_total", CANCELLED)
    body = json.dumps({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 500})
    address = urlsplit(gateway.url)
    request = (
        "POST /v1/completions HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        f"Authorization: Bearer {client_key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(request.encode())
        summarizer.wait_metric("switchyard_generations_running", DEFAULT, 1)
    # The connection closed mid-generation: the gateway cancels the call.
    summarizer.wait_metric("switchyard_generations_total", CANCELLED, before + 1)
    summarizer.wait_metric("switchyard_generations_running", DEFAULT, 0)


def test_a_client_that_closes_a_stream_cancels_its_generation(
    client: openai.OpenAI, summarizer: ServiceProcess
) -> None:
    before = summarizer.metric("switchyard_generations_total", CANCELLED)
    with client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Tell a long story about a lighthouse."}],
        max_tokens=500,
        stream=True,
    ) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    summarizer.wait_metric("switchyard_generations_total", CANCELLED, before + 1)
    summarizer.wait_metric("switchyard_generations_running", DEFAULT, 0)
