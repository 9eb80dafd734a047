"""The JSON the gateway accepts and answers, with the examples shown in the OpenAPI docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, TypedDict

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

SENTIMENT_EXAMPLE = "The update fixed every crash I had; the app is fast again."
NER_EXAMPLE = "Ada Lovelace worked with Charles Babbage in London."
SUMMARY_EXAMPLE = (
    "The city council met on Tuesday to discuss the new bicycle lanes. After a long debate, "
    "members voted to build twelve kilometres of protected lanes by next summer."
)


UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
"""The largest values of the protobuf fields the gateway fills (``uint32``, ``uint64``):
a larger number is refused with a 400 naming the field, not failed while encoding."""


def _not_true_or_false(value: object) -> object:
    # pydantic reads JSON true/false as 1/0 for a number field; a caller who sent
    # "temperature": false meant something else, so it is refused.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


NOT_BOOL = BeforeValidator(_not_true_or_false)
Integer = Annotated[int, NOT_BOOL]


class _Body(BaseModel):
    # A misspelt option is an error the caller should see, not a silently ignored field.
    model_config = ConfigDict(extra="forbid")


def _texts_schema(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of a body that takes ``text`` or ``texts``: exactly one of them."""
    return {
        "examples": examples,
        "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
    }


class TextsBody(_Body):
    """Give exactly one of `text` or `texts`."""

    # Absent means "not given"; the schema shows no null (SkipJsonSchema), as a caller
    # never needs to send one.
    text: str | SkipJsonSchema[None] = Field(None, description="One text; or give `texts`.")
    texts: Annotated[list[str], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="Several texts, answered in the same order."
    )
    model: str = Field("", description="Model name; empty chooses the service's default.")

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> Self:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` or `texts`")
        return self

    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or ())


class ClassifyBody(TextsBody):
    """Give exactly one of `text` or `texts`."""

    model_config = ConfigDict(
        json_schema_extra=_texts_schema(
            [{"text": SENTIMENT_EXAMPLE}, {"texts": ["Great!", "Awful."]}]
        )
    )
    top_k: Integer = Field(
        0, ge=0, le=UINT32_MAX, description="Most labels per text, best first; 0 gives all."
    )


class NerBody(TextsBody):
    """Give exactly one of `text` or `texts`."""

    model_config = ConfigDict(json_schema_extra=_texts_schema([{"text": NER_EXAMPLE}]))


class SummarizeBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": SUMMARY_EXAMPLE}]})

    text: str = Field(min_length=1, description="The text to summarize.")
    model: str = Field("", description="Model name; empty chooses the service's default.")
    max_new_tokens: Integer = Field(
        0,
        ge=0,
        le=UINT32_MAX,
        description="Most tokens to generate; 0 uses the model version's default (and the"
        " caller's tier caps it).",
    )
    # Bounds sit inside the optional type, before the validator: elsewhere they would not
    # reach the JSON Schema as minimum and maximum.
    temperature: Annotated[float, Field(ge=0, le=2), NOT_BOOL] | SkipJsonSchema[None] = Field(
        None, description="Sampling temperature; 0 or absent decodes greedily."
    )
    top_p: Annotated[float, Field(gt=0, le=1), NOT_BOOL] | SkipJsonSchema[None] = Field(
        None, description="Nucleus sampling mass."
    )
    seed: Annotated[int, Field(ge=0, le=UINT64_MAX), NOT_BOOL] | SkipJsonSchema[None] = Field(
        None, description="Seed for sampling, for repeatable output."
    )

    def generation(self) -> GenerationOptions:
        return GenerationOptions(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
        )


class StreamQuery(SummarizeBody):
    """The query string of ``GET /v1/summarize/stream``."""

    stream_token: str | None = Field(
        None, description="A token from POST /v1/summarize/stream-token (for EventSource)."
    )


class StreamTokenAnswer(BaseModel):
    stream_token: str
    expires_in_s: int


class GenerationOptions(TypedDict):
    """The generation options as the summarizer client takes them."""

    max_new_tokens: int
    temperature: float | None
    top_p: float | None
    seed: int | None


class _Answer(BaseModel):
    model: str = Field(description="The model that answered.")
    version: str = Field(description="The model version that answered.")
    request_id: str


class LabelScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    labels: list[LabelScore] = Field(description="Labels, best first.")


class ClassifyAnswer(_Answer):
    results: list[Classification] = Field(description="One result per text, in order.")


class Entity(BaseModel):
    label: str
    score: float
    start: int = Field(description="Offset of the first character, in Unicode code points.")
    end: int = Field(description="Offset just past the last character, in code points.")
    text: str


class EntityList(BaseModel):
    entities: list[Entity]


class NerAnswer(_Answer):
    results: list[EntityList] = Field(description="One result per text, in order.")


FinishReason = Literal["stop", "length", "unspecified"]


class Usage(BaseModel):
    prompt_tokens: int
    generated_tokens: int
    time_to_first_token_ms: float
    generation_ms: float
    finish_reason: FinishReason


class SummarizeAnswer(_Answer):
    summary: str
    usage: Usage


class TokenEvent(BaseModel):
    """``data`` of an SSE ``token`` event."""

    text: str
    index: int


class DoneEvent(_Answer):
    """``data`` of the final SSE ``done`` event."""

    usage: Usage


class VersionInfo(BaseModel):
    version: str
    status: str
    default: bool
    labels: list[str]
    max_batch_size: int
    max_input_chars: int
    runtime: str = Field(
        "",
        description="What runs the version's forward pass: transformers (eager PyTorch, the"
        " reference), onnxruntime or ctranslate2.",
        examples=["onnxruntime"],
    )
    quantization: str = Field(
        "", description="How its weights are stored: none or int8.", examples=["int8"]
    )
    reference: str = Field(
        "",
        description="The version this one was made from (empty for a reference version).",
        examples=["v1"],
    )
    prompt_lookup_tokens: int = Field(
        0,
        ge=0,
        description="A generator's drafted tokens a greedy step checks (prompt lookup"
        " decoding: the same output, faster where it repeats its prompt); 0 for none.",
        examples=[10],
    )
    agreement: dict[str, float] = Field(
        default_factory=dict,
        description="How closely it answers like its reference, measured on held-out data"
        " when it was prepared: agreement_label (share of texts with the same top label) and"
        " agreement_max_score_diff for a classifier; agreement_entity_f1 (F1 against the"
        " reference's entities), agreement_entity_f1_delta and agreement_entity_f1_ratio"
        " (its test-set F1 against the reference's) for NER. Empty for a reference version.",
        examples=[{"agreement_label": 0.995536, "agreement_max_score_diff": 0.0462096}],
    )


class ModelEntry(BaseModel):
    service: str
    name: str
    default: bool
    versions: list[VersionInfo]


MODEL_CREATED = 0
"""``created`` of every model in OpenAI's list: Switchyard does not record when a model
was made, and a made-up time that changed from call to call would mislead."""


class ModelCard(BaseModel):
    """One model as OpenAI's list shows it, with the service and versions that host it."""

    id: str = Field(description="The model's name, as `model` in a request.")
    object: Literal["model"] = "model"
    created: int = Field(
        MODEL_CREATED, description="Not recorded by Switchyard: always 0 (stable)."
    )
    owned_by: str = "switchyard"
    service: str = Field(description="The service that hosts it.", examples=["summarizer"])
    versions: list[str] = Field(description="Its hosted versions.", examples=[["v1"]])
    default_version: str = Field(description="The version a request gets by default.")


class ModelsAnswer(BaseModel):
    """Every hosted model twice: Switchyard's own detail in ``models``, and OpenAI's list
    shape (``object``, ``data``) that its SDKs read."""

    models: list[ModelEntry]
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    """One error, in the shape of OpenAI's (whose SDKs read `type` and `param`)."""

    message: str
    type: str = Field(
        description="The class of error: invalid_request_error (400, 405, 413, 415),"
        " authentication_error (401), permission_error (403), not_found_error (404, 410),"
        " conflict_error (409), rate_limit_error (429), server_error (5xx).",
        examples=["invalid_request_error"],
    )
    param: str | None = Field(
        description="The request's field at fault, when one is (`messages.0.content`).",
        examples=["temperature"],
    )
    code: str = Field(description="Switchyard's own error code.", examples=["invalid_argument"])
    request_id: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody
