"""A causal language model that summarizes, one request at a time; no gRPC here.

Generation runs on the service's worker thread. Each piece of text is handed to the
job's ``on_piece`` as soon as it is decoded (the incremental decoding of transformers'
text streamers), and a stopping criterion checks the job's ``cancelled`` event after
every token, so a cancelled job stops within a token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

SYSTEM_PROMPT = "You write short, faithful summaries. Answer with the summary only."
USER_PROMPT = "Summarize the following text in one or two sentences.\n\n{text}"
WARM_UP_TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


@dataclass(frozen=True)
class GenerationOptions:
    """Options of one generation, already checked against the model's limits."""

    max_new_tokens: int
    temperature: float = 0.0  # 0 decodes greedily
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Usage:
    """What a generation cost and why it ended (``stop``, ``length`` or ``cancelled``)."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    time_to_first_token_s: float = 0.0
    generation_time_s: float = 0.0
    finish_reason: str = "stop"
    tokens_after_cancel: int = 0


@dataclass(eq=False)
class GenerationJob:
    """One request's generation, handed from the event loop to the worker thread."""

    text: str
    options: GenerationOptions
    on_piece: Callable[[str], None]
    on_finished: Callable[[Usage], None] = lambda usage: None
    cancelled: threading.Event = field(default_factory=threading.Event)


class _PieceStreamer(TextIteratorStreamer):
    """Hands each decoded piece to the job and counts tokens (after a cancel too)."""

    def __init__(self, tokenizer: Any, job: GenerationJob, usage: Usage, started: float) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._job = job
        self._usage = usage
        self._started = started
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            self._usage.prompt_tokens = int(value.shape[-1])
        else:
            if self._usage.generated_tokens == 0:
                self._usage.time_to_first_token_s = time.perf_counter() - self._started
            self._usage.generated_tokens += int(value.numel())
            if self._job.cancelled.is_set():
                self._usage.tokens_after_cancel += int(value.numel())
        super().put(value)  # type: ignore[no-untyped-call]

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._job.on_piece(text)


class _StopWhenCancelled(StoppingCriteria):
    def __init__(self, cancelled: threading.Event) -> None:
        self._cancelled = cancelled

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self._cancelled.is_set(), dtype=torch.bool)


class CausalLmSummarizer:
    """Any Hugging Face causal LM with a chat template, from a folder or a hub id."""

    def __init__(self, location: str) -> None:
        # Typed as Any: transformers' annotations of generate and chat templates are looser
        # than what these calls return.
        self.tokenizer: Any = AutoTokenizer.from_pretrained(location)
        model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
        self.model = model.eval()

    def prompt_ids(self, text: str) -> dict[str, torch.Tensor]:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT.format(text=text)},
        ]
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def generate(self, job: GenerationJob) -> Usage:
        """Run one generation to its end (or its cancel), streaming pieces to the job."""
        usage = Usage()
        started = time.perf_counter()
        options = job.options
        sampling: dict[str, Any] = {"do_sample": False}
        if options.temperature > 0:
            sampling = {
                "do_sample": True,
                "temperature": options.temperature,
                "top_p": options.top_p,
            }
            if options.seed is not None:
                torch.manual_seed(options.seed)
        try:
            prompt = self.prompt_ids(job.text)
            with torch.inference_mode():
                self.model.generate(
                    input_ids=prompt["input_ids"],
                    attention_mask=prompt["attention_mask"],
                    max_new_tokens=options.max_new_tokens,
                    streamer=_PieceStreamer(self.tokenizer, job, usage, started),
                    stopping_criteria=StoppingCriteriaList([_StopWhenCancelled(job.cancelled)]),
                    pad_token_id=self.tokenizer.eos_token_id,
                    **sampling,
                )
        finally:
            usage.generation_time_s = time.perf_counter() - started
            if job.cancelled.is_set():
                usage.finish_reason = "cancelled"
            elif usage.generated_tokens >= options.max_new_tokens:
                usage.finish_reason = "length"
            job.on_finished(usage)
        return usage

    def predict_batch(self, jobs: Sequence[GenerationJob]) -> list[Usage]:
        """Generations run one at a time: a streamer serves one sequence, and seed and
        temperature are per request."""
        return [self.generate(job) for job in jobs]

    def warm_up(self) -> None:
        self.generate(GenerationJob(WARM_UP_TEXT, GenerationOptions(max_new_tokens=4), _discard))


def _discard(piece: str) -> None:
    """Drops a piece: warm-up output goes nowhere."""
