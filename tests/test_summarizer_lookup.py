"""Prompt lookup on the real SmolLM2-135M weights: the version that drafts tokens from its
text gives the reference's greedy tokens and pieces, takes fewer forward passes than
tokens on a summary that quotes its text, runs its linear layers on packed oneDNN
weights (and every lookup version of a folder on one copy of them), starts drafting only
after its first piece, stops on a cancel within a token, and samples a token a step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from services.runtime.packed_linear import PackedLinear
from services.summarizer.agreement import read_heldout
from services.summarizer.generation import GenerationJob, GenerationOptions
from services.summarizer.lookup import drafts_for
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


def test_lookup_versions_share_packed_weights_and_the_reference_keeps_its_own(
    prepared_models: Path, reference: CausalLmSummarizer, lookup: CausalLmSummarizer
) -> None:
    other = CausalLmSummarizer(str(prepared_models / "summarizer" / "v1"), DRAFTS // 2)
    assert other.model is lookup.model, "one packed copy per folder"
    assert lookup.model is not reference.model
    assert isinstance(lookup.model.lm_head, PackedLinear)
    assert isinstance(reference.model.lm_head, torch.nn.Linear)
    assert not any(isinstance(m, torch.nn.Linear) for m in lookup.model.modules())


def test_drafts_follow_the_first_earlier_occurrence_of_the_last_tokens() -> None:
    tokens = [1, 2, 3, 4, 9, 2, 3, 5, 6, 2, 3]
    assert drafts_for(tokens, 2) == [4, 9], "the last two tokens first appear before 4"
    assert drafts_for([7, 8, 5, 1, 8], 3) == [5, 1, 8], "failing two, the last one"
    assert drafts_for([1, 2, 3], 3) == []
    assert drafts_for(tokens, 0) == []


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


def test_drafts_start_once_the_first_piece_is_out(lookup: CausalLmSummarizer) -> None:
    pieces: list[str] = []
    fed: list[tuple[int, int]] = []  # (pieces out before the pass, tokens it was fed)

    def seen(module: object, args: object, kwargs: dict[str, torch.Tensor]) -> None:
        fed.append((len(pieces), int(kwargs["input_ids"].shape[-1])))

    hook = lookup.model.register_forward_pre_hook(seen, with_kwargs=True)
    try:
        options = GenerationOptions(max_new_tokens=40)
        lookup.generate(GenerationJob(QUOTING, options, pieces.append))
    finally:
        hook.remove()
    prompt_pass, *steps = fed
    assert prompt_pass[1] > 20
    before = [tokens for out, tokens in steps if out == 0]
    assert before and all(tokens == 1 for tokens in before), "plain steps until a piece"
    assert any(tokens > 1 for out, tokens in steps if out > 0), "drafts checked after it"


def test_a_sampled_generation_takes_a_token_a_forward_pass(
    lookup: CausalLmSummarizer, forwards: _Forwards
) -> None:
    sampled = GenerationOptions(max_new_tokens=12, temperature=0.8, seed=7)
    made = generate(lookup, QUOTING, sampled)
    assert forwards.count == made.usage.generated_tokens


def test_a_cancel_stops_prompt_lookup_within_a_token(lookup: CausalLmSummarizer) -> None:
    usage = cancelled_after_two_pieces(lookup)
    assert usage.finish_reason == "cancelled"
    # The drafts the step under way kept are not handed out after the cancel.
    assert usage.tokens_after_cancel <= 1, "no more than plain decoding's token under way"
    assert usage.generated_tokens < 400


def test_drafts_kept_after_a_cancel_are_not_handed_out(lookup: CausalLmSummarizer) -> None:
    # Cancelled as its sixth piece comes out, in the middle of a step that kept several
    # drafts of this quoting summary: the rest of that step is dropped.
    pieces: list[str] = []
    job = GenerationJob(QUOTING, GenerationOptions(max_new_tokens=40), pieces.append)

    def cancel_at_the_sixth(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 6:
            job.cancelled.set()

    job.on_piece = cancel_at_the_sixth
    usage = lookup.generate(job)
    assert usage.finish_reason == "cancelled"
    assert usage.tokens_after_cancel == 0
    # At most the word under way, already handed out, is flushed as a last piece.
    assert len(pieces) <= 7
