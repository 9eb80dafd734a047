"""How far a summarizer version agrees with the version it was made from: greedy output
on held-out texts, compared token by token.

A version made by another runtime from the same weights must give the same greedy tokens
as its reference on every held-out text; a quantized one may drift, within a floor on
token agreement. ``models prepare`` refuses a version that falls short.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.runtime.registry import Quantization
from services.summarizer.generation import (
    GenerationJob,
    GenerationOptions,
    Usage,
    discard_piece,
)

HELDOUT_FILE = Path(__file__).resolve().parent / "data" / "heldout_prompts.jsonl"
NEW_TOKENS = 32
TOKEN_AGREEMENT_FLOOR = 0.9
"""The least token agreement a quantized version may have with its reference."""


class Generates(Protocol):
    """A summarizer runtime, as far as agreement needs one."""

    def generate(self, job: GenerationJob) -> Usage: ...


def read_heldout(path: Path = HELDOUT_FILE) -> list[str]:
    """The held-out texts, one JSON object with a ``text`` per line."""
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def generated_ids(model: Generates, text: str, options: GenerationOptions) -> list[int]:
    """The token ids one generation makes."""
    ids: list[int] = []
    model.generate(GenerationJob(text, options, discard_piece, on_token=ids.append))
    return ids


def greedy_ids(
    model: Generates, texts: Sequence[str], new_tokens: int = NEW_TOKENS
) -> list[list[int]]:
    """The greedy token ids of each text, at most ``new_tokens`` each."""
    return [generated_ids(model, t, GenerationOptions(max_new_tokens=new_tokens)) for t in texts]


@dataclass(frozen=True)
class Agreement:
    """Greedy output of a version against its reference's, over the same texts."""

    prompts: int
    equal: int
    """Texts on which every token is the reference's."""
    token_agreement: float
    """The mean over texts of the share of tokens that match before the first difference
    (after it, greedy decoding continues from a different text, so nothing compares)."""
    new_tokens: int = NEW_TOKENS

    def figures(self) -> dict[str, float]:
        """The figures a prepared version keeps in its marker file."""
        return {
            "heldout_prompts": self.prompts,
            "heldout_new_tokens": self.new_tokens,
            "greedy_equal_prompts": self.equal,
            "token_agreement": round(self.token_agreement, 4),
        }


def _matching_share(reference: Sequence[int], candidate: Sequence[int]) -> float:
    longest = max(len(reference), len(candidate))
    if longest == 0:
        return 1.0
    prefix = 0
    for ours, theirs in zip(reference, candidate, strict=False):
        if ours != theirs:
            break
        prefix += 1
    return prefix / longest


def compare(
    reference: Sequence[Sequence[int]],
    candidate: Sequence[Sequence[int]],
    new_tokens: int = NEW_TOKENS,
) -> Agreement:
    """The agreement of ``candidate``'s token ids with ``reference``'s, text by text."""
    if len(reference) != len(candidate) or not reference:
        raise ValueError("agreement compares the same texts, at least one")
    shares = [_matching_share(r, c) for r, c in zip(reference, candidate, strict=True)]
    return Agreement(
        prompts=len(reference),
        equal=sum(list(r) == list(c) for r, c in zip(reference, candidate, strict=True)),
        token_agreement=sum(shares) / len(shares),
        new_tokens=new_tokens,
    )


class AgreementRefused(SystemExit):
    """A version disagrees with its reference more than its quantization allows."""


def check(agreement: Agreement, quantization: Quantization, version: str, reference: str) -> None:
    """Pass a version whose greedy output is its reference's on every held-out text, or,
    quantized, whose token agreement reaches the floor; refuse any other."""
    measured = (
        f"greedy output equal on {agreement.equal} of {agreement.prompts} held-out texts"
        f" ({agreement.new_tokens} new tokens each), token agreement"
        f" {agreement.token_agreement:.3f}"
    )
    if quantization == "none" and agreement.equal < agreement.prompts:
        raise AgreementRefused(
            f"{version} disagrees with {reference}: {measured}; an unquantized version must"
            " give its reference's greedy output on every held-out text"
        )
    if quantization != "none" and agreement.token_agreement < TOKEN_AGREEMENT_FLOOR:
        raise AgreementRefused(
            f"{version} ({quantization}) disagrees with {reference}: {measured}, below the"
            f" floor of {TOKEN_AGREEMENT_FLOOR}"
        )
