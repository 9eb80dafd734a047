"""Greedy decoding with prompt lookup, on a Hugging Face causal LM's own forward pass.

Each step feeds the last token kept and the drafts: the tokens that followed an earlier
occurrence, in the prompt or the output, of the last two tokens (or failing that the last
one). The model's greedy choice after every prefix comes out of that one pass; the drafts
are kept up to the first the model would not have chosen, then the model's own next token,
and the cache is cut back to the tokens kept. So every token kept is the model's greedy
choice after those before it, as in plain decoding.

This replaces transformers' ``generate(prompt_lookup_num_tokens=...)``, for what was
measured here: on PyTorch's own linear layers a pass that checks drafts cost about two
one-token passes, and transformers drafts from the first step, so its first piece (a
whole word, two tokens or more) came 100-140 ms after plain decoding's. Its assisted
decoding cannot continue from a cache that plain decoding made (its first step feeds the
whole sequence again), so the first piece cannot be made plainly and the rest with
drafts in two calls either. Here drafts start once the first piece is out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from services.summarizer.generation import GenerationJob, PieceStreamer

NGRAM = 2
"""The longest run of last tokens looked up for drafts."""


def drafts_for(tokens: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` tokens that followed the first earlier occurrence of the last
    ``NGRAM`` tokens, or failing that of fewer; none when nothing matches."""
    if count <= 0:
        return []
    for size in range(min(NGRAM, len(tokens) - 1), 0, -1):
        tail = list(tokens[-size:])
        for start in range(len(tokens) - size):
            if tokens[start] == tail[0] and list(tokens[start : start + size]) == tail:
                return list(tokens[start + size : start + size + count])
    return []


def greedy_with_lookup(
    model: Any,
    prompt: list[int],
    job: GenerationJob,
    streamer: PieceStreamer,
    drafts: int,
    end_ids: set[int],
) -> None:
    """Decode ``job`` greedily from ``prompt``, putting each step's kept tokens into
    ``streamer`` one by one, until an end token, ``max_new_tokens`` or a cancel (no token
    is handed out once it is cancelled); at most ``drafts`` drafts a step, and none before
    the first piece."""
    limit = job.options.max_new_tokens
    cache = DynamicCache(config=model.config)
    tokens = list(prompt)
    logits = _forward(model, tokens, cache, rows=1)
    new = [int(logits[-1].argmax())]
    made = 0
    while True:
        new = new[: limit - made]
        end = next((i for i, token in enumerate(new) if token in end_ids), None)
        if end is not None:
            new = new[: end + 1]
        for token in new:
            # A cancel (or a stop sequence) that came while the pass ran ends the hand-out
            # at once: the kept drafts after it are dropped, so a cancel stops within one
            # token here as in plain decoding.
            if job.cancelled.is_set():
                return
            streamer.put(torch.tensor([token]))
        tokens += new
        made += len(new)
        if end is not None or made >= limit or job.cancelled.is_set():
            return
        # A pass checking drafts costs more than a one-token pass (1.1-1.3 times on
        # packed weights), and the first piece waits for its word's end, rarely among the
        # drafts: plain steps until then.
        draft = drafts_for(tokens, min(drafts, limit - made - 1)) if streamer.pieces else []
        chosen = _forward(model, [tokens[-1], *draft], cache, rows=len(draft) + 1).argmax(-1)
        kept = 0
        while kept < len(draft) and draft[kept] == int(chosen[kept]):
            kept += 1
        new = [*draft[:kept], int(chosen[kept])]
        cache.crop(kept - len(draft))  # drop the rejected drafts' keys and values


def _forward(model: Any, ids: list[int], cache: DynamicCache, rows: int) -> torch.Tensor:
    """The logits of the last ``rows`` of ``ids`` (fed after what ``cache`` holds)."""
    out = model(
        input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True, logits_to_keep=rows
    )
    logits: torch.Tensor = out.logits[0]
    return logits
