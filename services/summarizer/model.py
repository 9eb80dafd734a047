"""The transformers runtime of the summarizer: any Hugging Face causal LM with a chat
template, one request at a time; no gRPC here. It is the reference that faster runtimes
of the same weights must agree with.

Generation runs on the service's worker thread. Each piece of text is handed to the
job's ``on_piece`` as soon as it is decoded, and the job's ``cancelled`` event is checked
after every step (and with prompt lookup before each kept token is handed out), so a
cancelled job stops within one token.

Prompt lookup (``prompt_lookup_tokens``, greedy only; ``services.summarizer.lookup``)
drafts the tokens that follow an earlier occurrence, in the prompt or the output, of the
last two tokens (or failing that the last one), and the model checks every draft in one
forward pass, keeping them up to its first disagreement: each token kept is the model's
own greedy choice, and a summary that repeats its text's words takes several tokens a
step for little more than the price of one. Such versions run their linear layers on
oneDNN with weights laid out once (``services.runtime.packed_linear``), where a pass of up
to eleven rows costs 1.0 to 1.3 times one row's; the others on PyTorch's own. Versions
of the same folder and kind share one copy of the weights.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from services.runtime.packed_linear import can_pack, pack_linears
from services.summarizer.generation import (
    WARM_UP_TEXT,
    GenerationJob,
    GenerationOptions,
    PieceStreamer,
    Usage,
    chat_messages,
    discard_piece,
    finish,
    prompt_token_ids,
    start,
)
from services.summarizer.lookup import greedy_with_lookup


class _StopWhenCancelled(StoppingCriteria):
    def __init__(self, cancelled: threading.Event) -> None:
        self._cancelled = cancelled

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self._cancelled.is_set(), dtype=torch.bool)


@dataclass(eq=False)
class _Weights:
    # Typed as Any: transformers' annotations of generate and chat templates are looser
    # than what these calls return.
    tokenizer: Any
    model: Any


_loaded: weakref.WeakValueDictionary[tuple[str, bool], _Weights] = weakref.WeakValueDictionary()
_loading = threading.Lock()


def _weights(location: str, packed: bool) -> _Weights:
    """The tokenizer and model of a folder or hub id, with its linear layers packed for
    oneDNN or not, shared by every version that asks for the same while any of them is
    loaded (generation only reads the weights, and a service's versions run on its one
    model thread anyway)."""
    with _loading:
        weights = _loaded.get((location, packed))
        if weights is None:
            model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
            if packed:
                pack_linears(model)
            weights = _Weights(AutoTokenizer.from_pretrained(location), model.eval())
            _loaded[(location, packed)] = weights
        return weights


class CausalLmSummarizer:
    """Any Hugging Face causal LM with a chat template, from a folder or a hub id;
    ``prompt_lookup_tokens`` above 0 drafts that many tokens a step when decoding greedily."""

    def __init__(self, location: str, prompt_lookup_tokens: int = 0) -> None:
        # Held, so that the shared copy stays loaded.
        self._weights = _weights(location, packed=prompt_lookup_tokens > 0 and can_pack())
        self.tokenizer: Any = self._weights.tokenizer
        self.model: Any = self._weights.model
        self.prompt_lookup_tokens = prompt_lookup_tokens
        eos = self.model.generation_config.eos_token_id
        self._end_ids = {int(i) for i in (eos if isinstance(eos, list) else [eos])}

    def prompt_ids(self, text: str) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer.apply_chat_template(
            chat_messages(text), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def generate(self, job: GenerationJob) -> Usage:
        """Run one generation to its end (or its cancel), streaming pieces to the job."""
        usage = Usage()
        started = start(job)
        try:
            prompt = prompt_token_ids(self.tokenizer, job)
            streamer = PieceStreamer(self.tokenizer, job, usage, started)
            with torch.inference_mode():
                if self.prompt_lookup_tokens and job.options.temperature == 0:
                    streamer.put(torch.tensor(prompt))
                    greedy_with_lookup(
                        self.model, prompt, job, streamer, self.prompt_lookup_tokens, self._end_ids
                    )
                    streamer.end()  # type: ignore[no-untyped-call]
                else:
                    self._generate(job, prompt, streamer)
        finally:
            finish(job, usage, started)
        return usage

    def _generate(self, job: GenerationJob, prompt: list[int], streamer: PieceStreamer) -> None:
        """A token a step, with transformers' ``generate``."""
        options = job.options
        sampling: dict[str, Any] = {"do_sample": False}
        if options.temperature > 0:
            # Never drafts: with drafts a sample would draw its random numbers in another
            # order, and a seeded request would not repeat v1's sample.
            sampling = {
                "do_sample": True,
                "temperature": options.temperature,
                "top_p": options.top_p,
            }
            if options.seed is not None:
                torch.manual_seed(options.seed)
        ids = torch.tensor([prompt])
        self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=options.max_new_tokens,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_StopWhenCancelled(job.cancelled)]),
            pad_token_id=self.tokenizer.eos_token_id,
            **sampling,
        )

    def predict_batch(self, jobs: Sequence[GenerationJob]) -> list[Usage]:
        """Generations run one at a time: a streamer serves one sequence, and seed and
        temperature are per request."""
        return [self.generate(job) for job in jobs]

    def warm_up(self) -> None:
        self.generate(
            GenerationJob(WARM_UP_TEXT, GenerationOptions(max_new_tokens=4), discard_piece)
        )
