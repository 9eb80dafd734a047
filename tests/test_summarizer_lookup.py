"""Prompt lookup on the real SmolLM2-135M weights: the version that drafts tokens from its
text gives the reference's greedy tokens and pieces, takes fewer forward passes than
tokens on a summary that quotes its text, shares the reference's weights, stops on a
cancel within a step, and samples a token a step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.summarizer.agreement import read_heldout
from services.summarizer.generation import GenerationOptions
from services.summarizer.model import CausalLmSummarizer
from tests.test_summarizer_runtimes import TEXTS, cancelled_after_two_pieces, generate

DRAFTS = 10
QUOTING = read_heldout()[2]
"""A held-out text whose summary repeats its first sentence word for word."""


@pytest.fixture(scope="module")
def reference(prepared_models: Path) -> CausalLmSummarizer:
    return CausalLmSummarizer(str(prepared_models / "summarizer" / "v1"))


@pytest.fixture(scope="module")
def lookup(prepared_models: Path, reference: CausalLmSummarizer) -> CausalLmSummarizer:
    return CausalLmSummarizer(str(prepared_models / "summarizer" / "v1"), DRAFTS)


class _Forwards:
    """Counts the model's forward passes while in a ``with`` block."""

    def __init__(self, model: CausalLmSummarizer) -> None:
        self._model = model
        self.count = 0

    def __enter__(self) -> _Forwards:
        self._hook = self._model.model.register_forward_hook(self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        self._hook.remove()

    def _seen(self, *args: object) -> None:
        self.count += 1


@pytest.fixture
def forwards(lookup: CausalLmSummarizer) -> Iterator[_Forwards]:
    with _Forwards(lookup) as counted:
        yield counted


def test_versions_of_one_folder_share_its_weights(
    reference: CausalLmSummarizer, lookup: CausalLmSummarizer
) -> None:
    assert lookup.model is reference.model and lookup.tokenizer is reference.tokenizer


@pytest.mark.parametrize("text", [*TEXTS, QUOTING])
def test_prompt_lookup_streams_the_reference_tokens_and_pieces(
    reference: CausalLmSummarizer, lookup: CausalLmSummarizer, text: str
) -> None:
    options = GenerationOptions(max_new_tokens=40)
    expected = generate(reference, text, options)
    made = generate(lookup, text, options)
    assert made.ids == expected.ids
    assert made.pieces == expected.pieces, "drafts kept together still break into words"
    assert made.counts == expected.counts, "each piece counts its own tokens, not its step's"
    assert (made.usage.generated_tokens, made.usage.finish_reason) == (
        expected.usage.generated_tokens,
        expected.usage.finish_reason,
    )


def test_a_quoting_summary_takes_several_tokens_a_forward_pass(
    lookup: CausalLmSummarizer, forwards: _Forwards
) -> None:
    made = generate(lookup, QUOTING, GenerationOptions(max_new_tokens=40))
    assert made.usage.generated_tokens == 40
    assert forwards.count <= 20, f"{forwards.count} forward passes for 40 tokens"


def test_a_sampled_generation_takes_a_token_a_forward_pass(
    lookup: CausalLmSummarizer, forwards: _Forwards
) -> None:
    sampled = GenerationOptions(max_new_tokens=12, temperature=0.8, seed=7)
    made = generate(lookup, QUOTING, sampled)
    assert forwards.count == made.usage.generated_tokens


def test_a_cancel_stops_prompt_lookup_within_a_step(lookup: CausalLmSummarizer) -> None:
    usage = cancelled_after_two_pieces(lookup)
    assert usage.finish_reason == "cancelled"
    assert usage.tokens_after_cancel <= DRAFTS + 1, "the step under way, no more"
    assert usage.generated_tokens < 400
