"""Conversion between the summarizer's protobuf messages and its domain objects."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from services.summarizer.generation import Usage
from switchyard.summarizer.v1 import summarizer_pb2 as pb

_FINISH_REASONS = {"stop": pb.FINISH_REASON_STOP, "length": pb.FINISH_REASON_LENGTH}


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def usage_to_pb(usage: Usage) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        generated_tokens=usage.generated_tokens,
        time_to_first_token=_duration(usage.time_to_first_token_s),
        generation_time=_duration(usage.generation_time_s),
        finish_reason=_FINISH_REASONS.get(usage.finish_reason, pb.FINISH_REASON_UNSPECIFIED),
    )
