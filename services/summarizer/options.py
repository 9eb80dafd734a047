"""Checks on generation options, against the limits of the model version."""

from __future__ import annotations

from services.runtime.errors import InvalidInput
from services.runtime.inputs import check_text
from services.runtime.registry import VersionSpec
from services.summarizer.generation import GenerationOptions, Prompt
from switchyard.summarizer.v1 import summarizer_pb2 as pb

MAX_TEMPERATURE = 2.0


def check_options(options: pb.GenerationOptions, spec: VersionSpec) -> GenerationOptions:
    """Domain options from the request's, or INVALID_ARGUMENT naming the broken limit."""
    max_new_tokens = options.max_new_tokens or spec.default_max_new_tokens
    if max_new_tokens > spec.max_new_tokens_cap:
        raise InvalidInput(
            f"max_new_tokens is {max_new_tokens}; the limit is {spec.max_new_tokens_cap}"
            " (max_new_tokens_cap)"
        )
    temperature = options.temperature if options.HasField("temperature") else 0.0
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise InvalidInput(
            f"temperature is {temperature:g}; it must be in [0, {MAX_TEMPERATURE:g}]"
        )
    top_p = options.top_p if options.HasField("top_p") else 1.0
    if not 0.0 < top_p <= 1.0:
        raise InvalidInput(f"top_p is {top_p:g}; it must be in (0, 1]")
    seed = options.seed if options.HasField("seed") else None
    return GenerationOptions(max_new_tokens, temperature, top_p, seed)


ROLES = frozenset({"system", "user", "assistant"})


def check_prompt(request: pb.GenerateRequest, max_chars: int) -> Prompt:
    """The prompt of a Generate request, or INVALID_ARGUMENT saying what is wrong with it."""
    which = request.WhichOneof("input")
    if which == "prompt":
        return Prompt(text=check_text(request.prompt, max_chars, "prompt"))
    if which != "conversation" or not request.conversation.messages:
        raise InvalidInput("send a prompt or a conversation with at least one message")
    turns = []
    for i, message in enumerate(request.conversation.messages):
        if message.role not in ROLES:
            raise InvalidInput(
                f"messages[{i}].role is {message.role!r}; it must be one of"
                f" {', '.join(sorted(ROLES))}"
            )
        turns.append((message.role, message.content))
    check_text("".join(content for _, content in turns), max_chars, "the messages' content")
    return Prompt(messages=tuple(turns))
