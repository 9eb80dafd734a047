"""How far a summarizer version agrees with the version it was made from: greedy output
on held-out texts, compared token by token.

A version made by another runtime from the same weights must give the same greedy tokens
as its reference on every held-out text. A quantized one may drift: once one token
differs, greedy decoding goes on from a different text, so its later tokens compare with
nothing. It is judged instead on next-token agreement: fed the reference's own tokens,
how often its likeliest next token is the reference's, a floor that one early difference
cannot sink. ``models prepare`` refuses a version that falls short.
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
NEXT_TOKEN_FLOOR = 0.93
"""The least next-token agreement a quantized version may have with its reference. The
starter int8 conversion measures 0.947 to 0.955 on the CPUs tried; the floor leaves room
for other int8 kernels, whose near-ties between the two likeliest tokens may fall the
other way."""


class Generates(Protocol):
    """A summarizer runtime, as far as agreement needs one."""

    def generate(self, job: GenerationJob) -> Usage: ...


class PredictsNext(Protocol):
    """A runtime that also gives its likeliest next token after every prefix of a text."""

    def prompt_ids(self, text: str) -> list[int]: ...

    def likeliest_next(self, ids: Sequence[int]) -> list[int]: ...


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
    next_token: float | None = None
    """The share of the reference's tokens that the version, fed the reference's prompt
    and tokens before each one, predicts as its likeliest (None: not measured)."""

    def figures(self) -> dict[str, float]:
        """The figures a prepared version keeps in its marker file; those named
        ``agreement_`` are shown by ListModels and the gateway's model list."""
        figures = {
            "heldout_prompts": self.prompts,
            "heldout_new_tokens": self.new_tokens,
            "agreement_greedy_equal": round(self.equal / self.prompts, 4),
            "agreement_token_prefix": round(self.token_agreement, 4),
        }
        if self.next_token is not None:
            figures["agreement_next_token"] = round(self.next_token, 4)
        return figures


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


def next_token_agreement(
    model: PredictsNext, texts: Sequence[str], reference: Sequence[Sequence[int]]
) -> float:
    """The share of the reference's generated tokens that ``model`` predicts, fed the
    prompt and the reference's tokens before each one."""
    matched = total = 0
    for text, generated in zip(texts, reference, strict=True):
        if not generated:
            continue  # nothing generated: no prediction to judge
        prompt = model.prompt_ids(text)
        # The prediction after position i is for the token at i + 1: the last prompt
        # position predicts the first generated token.
        predicted = model.likeliest_next([*prompt, *generated[:-1]])[len(prompt) - 1 :]
        matched += sum(p == g for p, g in zip(predicted, generated, strict=True))
        total += len(generated)
    return matched / total if total else 1.0


def compare(
    reference: Sequence[Sequence[int]],
    candidate: Sequence[Sequence[int]],
    new_tokens: int = NEW_TOKENS,
    next_token: float | None = None,
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
        next_token=next_token,
    )


class AgreementRefused(SystemExit):
    """A version disagrees with its reference more than its quantization allows."""


def check(agreement: Agreement, quantization: Quantization, version: str, reference: str) -> None:
    """Pass a version whose greedy output is its reference's on every held-out text, or,
    quantized, whose next-token agreement reaches the floor; refuse any other."""
    measured = (
        f"greedy output equal on {agreement.equal} of {agreement.prompts} held-out texts"
        f" ({agreement.new_tokens} new tokens each), tokens before the first difference"
        f" {agreement.token_agreement:.3f}"
    )
    if agreement.next_token is not None:
        measured += f", next-token agreement {agreement.next_token:.3f}"
    if quantization == "none" and agreement.equal < agreement.prompts:
        raise AgreementRefused(
            f"{version} disagrees with {reference}: {measured}; an unquantized version must"
            " give its reference's greedy output on every held-out text"
        )
    if quantization != "none" and (agreement.next_token or 0.0) < NEXT_TOKEN_FLOOR:
        raise AgreementRefused(
            f"{version} ({quantization}) disagrees with {reference}: {measured}, below the"
            f" floor of {NEXT_TOKEN_FLOOR} next-token agreement"
        )
