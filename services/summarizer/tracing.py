"""The span of one generation, when traces are on, in OpenTelemetry's GenAI semantic
conventions (``gen_ai.*``): what was asked for, how long the first token took and how
many tokens came. It is the parent of the generation's queue wait, batch and forward
spans (``services.runtime.tracing``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from services.summarizer.generation import GenerationOptions, Usage
from switchyard import telemetry

_tracer = telemetry.tracer("switchyard.summarizer")

TEXT_COMPLETION = "text_completion"
"""``gen_ai.operation.name`` of a summary (a text in, a text out)."""
CHAT = "chat"
"""``gen_ai.operation.name`` of a generation from chat messages."""


def start(operation: str, model: str, version: str, options: GenerationOptions) -> Span | None:
    """A generation's span (not current: see ``submitting``); None while traces are off."""
    if not telemetry.ENABLED:
        return None
    return _tracer.start_span(
        f"{operation} {model}",
        attributes={
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "switchyard",
            "gen_ai.request.model": model,
            "gen_ai.response.model": f"{model}:{version}",
            "gen_ai.request.max_tokens": options.max_new_tokens,
            "gen_ai.request.temperature": options.temperature,
            "gen_ai.request.top_p": options.top_p,
            "switchyard.model.version": version,
        },
    )


@contextlib.contextmanager
def submitting(span: Span | None) -> Iterator[None]:
    """The generation's span current while its job is submitted, so that the job's queue
    wait, batch and forward spans go under it (a task copies the context it starts in)."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False):
        yield


def end(span: Span | None, usage: Usage | None) -> None:
    """What the generation came to (``usage``, None when it failed or was given up)."""
    if span is None:
        return
    if usage is None:
        span.set_status(Status(StatusCode.ERROR, "the generation did not finish"))
    else:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.generated_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", [usage.finish_reason])
        span.set_attribute("switchyard.time_to_first_token_s", usage.time_to_first_token_s)
        span.set_attribute("switchyard.generation_time_s", usage.generation_time_s)
    span.end()
