"""One generation as every summarizer runtime sees it: the options, the prompt, the pieces
handed back as they are decoded, and what it cost; no gRPC and no model here.

Both runtimes feed their tokens through the same ``PieceStreamer``, so that the same tokens
always make the same pieces, whichever runtime produced them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import TextStreamer

SYSTEM_PROMPT = "You write short, faithful summaries. Answer with the summary only."
USER_PROMPT = "Summarize the following text in one or two sentences.\n\n{text}"
WARM_UP_TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


def chat_messages(text: str) -> list[dict[str, str]]:
    """The conversation a summary is asked for in, before the model's chat template."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT.format(text=text)},
    ]


@dataclass(frozen=True)
class Prompt:
    """What a generation continues, when it is not a summary: a conversation of
    (role, content) turns, through the model's chat template, or a text continued as it is."""

    messages: tuple[tuple[str, str], ...] | None = None
    text: str | None = None


def prompt_token_ids(tokenizer: Any, job: GenerationJob) -> list[int]:
    """The token ids a job's generation starts from, the same for every runtime."""
    if job.prompt is not None and job.prompt.text is not None:
        return [int(i) for i in tokenizer(job.prompt.text)["input_ids"]]
    if job.prompt is not None and job.prompt.messages is not None:
        messages = [{"role": role, "content": content} for role, content in job.prompt.messages]
    else:
        messages = chat_messages(job.text)
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    return [int(i) for i in encoded["input_ids"]]


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


def _ignore_token(token_id: int) -> None:
    """The default ``on_token``: only the pieces are wanted."""


@dataclass(eq=False)
class GenerationJob:
    """One request's generation, handed from the event loop to the worker thread."""

    text: str
    options: GenerationOptions
    on_piece: Callable[[str], None]
    on_finished: Callable[[Usage], None] = lambda usage: None
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_token: Callable[[int], None] = _ignore_token
    """Called with each generated token id (agreement checks and benchmarks use them)."""
    prompt: Prompt | None = None
    """What to continue; None asks for the summary of ``text``."""
    on_started: Callable[[], None] = lambda: None
    """Called on the worker thread when the generation starts (after any wait in queue)."""
    generated_tokens: int = 0
    """Tokens generated so far, kept current on the worker thread before each piece."""
    stop_reached: bool = False
    """Set with ``cancelled`` when a stop sequence ended the generation: its reason is stop."""


class PieceStreamer(TextStreamer):
    """Decodes generated tokens into pieces as transformers' text streamers do (whole words,
    a line at a time), hands each piece to the job, and counts the usage: the prompt's
    tokens, the generated ones, the time to the first, and those made after a cancel.

    ``put`` takes the prompt's ids first, as an array of shape ``(n,)`` or ``(1, n)``,
    then each new token on its own, as an array of one (a torch tensor or a numpy array).
    """

    def __init__(self, tokenizer: Any, job: GenerationJob, usage: Usage, started: float) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._job = job
        self._usage = usage
        self._started = started
        self._prompt_seen = False
        self.pieces = 0
        """Pieces handed to the job so far."""

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            self._usage.prompt_tokens = int(value.shape[-1])
            super().put(value)  # type: ignore[no-untyped-call]
            return
        if self._usage.generated_tokens == 0:
            self._usage.time_to_first_token_s = time.perf_counter() - self._started
        flat = value.reshape(-1)
        (token,) = flat.tolist()
        self._usage.generated_tokens += 1
        self._job.generated_tokens = self._usage.generated_tokens
        if self._job.cancelled.is_set():
            self._usage.tokens_after_cancel += 1
        self._job.on_token(int(token))
        super().put(flat)  # type: ignore[no-untyped-call]

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.pieces += 1
            self._job.on_piece(text)


def start(job: GenerationJob) -> float:
    """Tell the job its generation starts; the start time its usage is measured from."""
    job.on_started()
    return time.perf_counter()


def finish(job: GenerationJob, usage: Usage, started: float) -> None:
    """Close a generation's usage (its time and why it ended) and report it to the job."""
    usage.generation_time_s = time.perf_counter() - started
    if job.stop_reached:
        usage.finish_reason = "stop"
    elif job.cancelled.is_set():
        usage.finish_reason = "cancelled"
    elif usage.generated_tokens >= job.options.max_new_tokens:
        usage.finish_reason = "length"
    job.on_finished(usage)


def discard_piece(piece: str) -> None:
    """Drops a piece: warm-up output goes nowhere."""
