"""The JSON of the OpenAI-compatible routes (``POST /v1/chat/completions`` and
``/v1/completions``): the bodies they read and the answers they give, in OpenAI's shapes.

A body is read as strictly as the native ones: JSON types exactly (no ``"1"`` for 1), and
a field Switchyard does not support is a 400 naming it (``param``) rather than silently
ignored. Fields that clients and SDKs commonly send at a value that changes nothing
(``presence_penalty: 0``, ``logprobs: false``) are accepted at that value only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import WithJsonSchema

from gateway.errors.refusals import InvalidArgument
from gateway.routes.schemas import UINT32_MAX, UINT64_MAX

CHAT_EXAMPLE: JsonDict = {
    "model": "summarizer",
    "messages": [{"role": "user", "content": "Say hello to the new team in one sentence."}],
}
COMPLETION_EXAMPLE: JsonDict = {"model": "summarizer", "prompt": "The three primary colours are"}


def _neutral(*values: object) -> Any:
    """A validator accepting only ``values`` (or null): the field's neutral values."""

    def check(value: object) -> object:
        if value is None or any(_same(value, v) for v in values):
            return value
        if not values:
            raise ValueError("is not supported")
        shown = " or ".join(json.dumps(v) for v in values)
        raise ValueError(f"is not supported; only {shown} is accepted")

    return AfterValidator(check)


def _same(value: object, neutral: object) -> bool:
    # 0.0 is 0, but false is not (JSON tells booleans from numbers).
    if isinstance(value, bool) or isinstance(neutral, bool):
        return value is neutral
    return value == neutral


def _neutral_schema(*values: object) -> WithJsonSchema:
    return WithJsonSchema(
        {"enum": [*values, None], "description": "Accepted only at its neutral value."}
    )


Zero = Annotated[Any, _neutral(0), _neutral_schema(0)]
NoLogprobs = Annotated[Any, _neutral(False), _neutral_schema(False)]
NoBias = Annotated[Any, _neutral({}), _neutral_schema({})]
OnlyOne = Annotated[Any, _neutral(1), _neutral_schema(1)]
PlainText = Annotated[Any, _neutral({"type": "text"}), _neutral_schema({"type": "text"})]

Tokens = Annotated[int, Field(ge=1, le=UINT32_MAX)]
Stop = (
    Annotated[str, Field(min_length=1)]
    | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)]
)


class _Strict(BaseModel):
    # JSON types exactly, and no field that is not declared.
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool | None = Field(
        None, description="Send one last chunk with the usage (and `choices: []`)."
    )


class _Generation(_Strict):
    """What chat completions and completions share."""

    model: str = Field(
        min_length=1, description="A model the summarizer service hosts.", examples=["summarizer"]
    )
    max_tokens: Tokens | None = Field(
        None, description="Most tokens to generate (the caller's tier caps it)."
    )
    temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(
        None, description="Sampling temperature; 0 or absent decodes greedily."
    )
    top_p: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="Nucleus sampling mass."
    )
    seed: Annotated[int, Field(ge=0, le=UINT64_MAX)] | None = Field(
        None, description="Seed for sampling, for repeatable output."
    )
    stop: Stop | None = Field(None, description="Up to 4 texts that end the generation.")
    stream: bool | None = Field(None, description="Stream chunks as Server-Sent Events.")
    stream_options: StreamOptions | None = None
    n: OnlyOne = Field(1, description="Choices to generate: only 1.")
    user: str | None = Field(None, description="Accepted and ignored.")
    presence_penalty: Zero = None
    frequency_penalty: Zero = None
    logit_bias: NoBias = None

    def requested_tokens(self) -> tuple[str, int]:
        """The field that asks for a number of tokens, and the number (0: none asked)."""
        return "max_tokens", self.max_tokens or 0

    def check(self) -> None:
        """What the field types cannot say: 400 naming the field."""
        self.requested_tokens()  # refuses two token limits that differ
        if self.stream_options is not None and not self.stream:
            raise InvalidArgument(
                "stream_options: only allowed when stream is true", param="stream_options"
            )

    def generation(self) -> dict[str, Any]:
        """The options as ``open_generate`` takes them (max_new_tokens aside)."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or ())
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": stop,
        }

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


def _text_parts_only(value: object) -> object:
    # Said plainly, rather than as a failed match of every member of the union.
    if isinstance(value, list):
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind != "text":
                raise ValueError(f"only text parts are supported, not {kind}")
    return value


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="`developer` is taken as `system`."
    )
    content: Annotated[str | list[TextPart], BeforeValidator(_text_parts_only)] = Field(
        description="The text, or a list of text parts (joined by newlines)."
    )

    def turn(self) -> tuple[str, str]:
        """(role, content) as the summarizer's chat template takes them."""
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, str):
            return role, self.content
        return role, "\n".join(part.text for part in self.content)


class ChatBody(_Generation):
    model_config = ConfigDict(json_schema_extra={"examples": [CHAT_EXAMPLE]})

    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: Tokens | None = Field(None, description="The same as max_tokens.")
    logprobs: NoLogprobs = None
    top_logprobs: Zero = None
    response_format: PlainText = None

    def requested_tokens(self) -> tuple[str, int]:
        given = {
            name: value
            for name, value in (
                ("max_completion_tokens", self.max_completion_tokens),
                ("max_tokens", self.max_tokens),
            )
            if value is not None
        }
        if len(set(given.values())) > 1:
            raise InvalidArgument(
                "max_tokens: differs from max_completion_tokens; give one of them",
                param="max_tokens",
            )
        return next(iter(given.items()), ("max_completion_tokens", 0))

    def source(self) -> dict[str, Any]:
        """What the model continues, as ``open_generate`` takes it."""
        return {"messages": [message.turn() for message in self.messages]}


def _one_prompt(value: object) -> object:
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    if isinstance(value, list):
        raise ValueError("give one prompt (a string, or a list of exactly one string)")
    return value


class CompletionBody(_Generation):
    model_config = ConfigDict(json_schema_extra={"examples": [COMPLETION_EXAMPLE]})

    prompt: Annotated[
        str,
        BeforeValidator(_one_prompt),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
                ],
                "description": "The text the model continues as it is (no chat template).",
            }
        ),
    ]
    echo: NoLogprobs = None
    best_of: OnlyOne = None
    logprobs: Annotated[Any, _neutral(), _neutral_schema()] = None
    suffix: Annotated[Any, _neutral(), _neutral_schema()] = None

    def source(self) -> dict[str, Any]:
        return {"prompt": self.prompt}


FinishReason = Literal["stop", "length"]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = Field(description="Tokens generated, as the model counted them.")
    total_tokens: int


class _Completion(BaseModel):
    id: str
    created: int = Field(description="Unix seconds when the completion began.")
    model: str = Field(description="The model that answered.")
    system_fingerprint: str = Field(description="The model version that answered.")
    usage: CompletionUsage


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(_Completion):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason
    logprobs: None = None


class TextCompletion(_Completion):
    object: Literal["text_completion"] = "text_completion"
    choices: list[TextChoice]
