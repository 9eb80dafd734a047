"""The CTranslate2 runtime of the summarizer: a converted model folder (weights, tokenizer,
chat template), one request at a time; no gRPC here.

The prompt, the tokens and the pieces are those of the transformers reference: the same
tokenizer and chat template make the prompt, and each generated token goes through the
same ``PieceStreamer``. CTranslate2 decodes on a thread of its own and calls back after
every token, before it computes the next one; the callback streams the token and returns
True to end the decoding at once when the job is cancelled, so a cancelled job stops
within a token.

Sampling: CTranslate2's sampler draws from a random generator that each of its threads
seeds once, so a request's seed could not repeat its sample. A sampled request without a
seed uses that sampler; one with a seed draws each token here (``sampling``) from the
step's logits: decoding runs greedily while the drawn token is CTranslate2's choice, and
starts again from the prompt and the tokens so far when it is not. A seeded sample costs
one prompt pass per such difference (a few at temperature 0.7, most tokens at 1.5).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoTokenizer

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
from services.summarizer.sampling import TOP_K, TokenSampler


def intra_threads(torch_threads: int) -> int:
    """CTranslate2's threads for one generation, from the service's torch threads setting:
    the same number, or for 0 (choose) half the cores. A batch of one gains nothing from
    more threads on this model (two ran slower than one on two cores), and the event loop
    streaming the pieces needs a core of its own."""
    if torch_threads > 0:
        return torch_threads
    return max(1, (os.cpu_count() or 1) // 2)


def end_token_ids(location: Path, tokenizer: Any) -> list[int]:
    """The ids that end a generation: the model's generation config's, as transformers
    stops on them, else the tokenizer's end-of-sequence token."""
    config = location / "generation_config.json"
    if config.exists():
        eos = json.loads(config.read_text()).get("eos_token_id")
        if eos is not None:
            return [int(i) for i in (eos if isinstance(eos, list) else [eos])]
    return [int(tokenizer.eos_token_id)]


class _Decoding:
    """The state of one generation across CTranslate2's callbacks (on its thread)."""

    def __init__(
        self, job: GenerationJob, streamer: PieceStreamer, end_ids: list[int], prompt: list[int]
    ) -> None:
        self.job = job
        self.streamer = streamer
        self.end_ids = end_ids
        self.tokens = list(prompt)
        self.generated = 0
        self.resume = False
        self.error: BaseException | None = None
        options = job.options
        self.sampler: TokenSampler | None = None
        if options.temperature > 0 and options.seed is not None:
            self.sampler = TokenSampler(options.temperature, options.top_p, options.seed)
        self.sampled_by_ctranslate2 = options.temperature > 0 and self.sampler is None

    @property
    def ended(self) -> bool:
        return (
            self.job.cancelled.is_set()
            or self.generated >= self.job.options.max_new_tokens
            or (self.generated > 0 and self.tokens[-1] in self.end_ids)
        )

    def on_step(self, step: Any) -> bool:
        """Take one generated token; True stops CTranslate2's decoding after it."""
        try:
            token = int(step.token_id)
            if self.sampler is not None:
                drawn = self.sampler.draw(np.asarray(step.logits))
                # CTranslate2 picked the likeliest token; when the draw differs, this
                # decoding stops and the next one resumes from the drawn token.
                self.resume = drawn != token
                token = drawn
            self.tokens.append(token)
            self.generated += 1
            self.streamer.put(np.asarray([token]))
            return self.resume or self.ended
        except BaseException as error:  # raised again on the worker thread
            self.error = error
            return True


class Ctranslate2Summarizer:
    """A causal LM converted for CTranslate2, with its tokenizer saved beside it."""

    def __init__(self, location: str, threads: int) -> None:
        try:
            import ctranslate2
        except ImportError as error:
            raise RuntimeError(
                "this version runs on CTranslate2, and the ctranslate2 package cannot be"
                f" imported ({error}); install it (pip install ctranslate2) or host the"
                " transformers version"
            ) from error
        folder = Path(location)
        # Typed as Any: neither package annotates these calls.
        self.tokenizer: Any = AutoTokenizer.from_pretrained(location)
        self.generator: Any = ctranslate2.Generator(
            location, device="cpu", inter_threads=1, intra_threads=threads
        )
        self.end_ids = end_token_ids(folder, self.tokenizer)

    def prompt_ids(self, text: str) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            chat_messages(text), add_generation_prompt=True, return_dict=True
        )
        return [int(i) for i in encoded["input_ids"]]

    def likeliest_next(self, ids: Sequence[int]) -> list[int]:
        """The likeliest next token after each prefix of ``ids``, in one forward pass."""
        logits = np.asarray(self.generator.forward_batch([list(ids)]))
        return [int(i) for i in logits[0].argmax(axis=-1)]

    def generate(self, job: GenerationJob) -> Usage:
        """Run one generation to its end (or its cancel), streaming pieces to the job."""
        usage = Usage()
        started = start(job)
        try:
            prompt = prompt_token_ids(self.tokenizer, job)
            streamer = PieceStreamer(self.tokenizer, job, usage, started)
            streamer.put(np.asarray(prompt))
            decoding = _Decoding(job, streamer, self.end_ids, prompt)
            self._decode(decoding)
            streamer.end()  # type: ignore[no-untyped-call]
        finally:
            finish(job, usage, started)
        return usage

    def _decode(self, decoding: _Decoding) -> None:
        # One call, unless a seeded sample draws a token CTranslate2 did not choose: then
        # the next call resumes from the prompt and the tokens so far.
        options = decoding.job.options
        native = decoding.sampled_by_ctranslate2
        while True:
            decoding.resume = False
            self.generator.generate_batch(
                [self.tokenizer.convert_ids_to_tokens(decoding.tokens)],
                max_length=options.max_new_tokens - decoding.generated,
                beam_size=1,
                sampling_topk=TOP_K if native else 1,
                sampling_topp=options.top_p if native else 1.0,
                sampling_temperature=options.temperature if native else 1.0,
                include_prompt_in_result=False,
                return_logits_vocab=decoding.sampler is not None,
                end_token=self.end_ids,
                callback=decoding.on_step,
            )
            if decoding.error is not None:
                raise decoding.error
            if not decoding.resume or decoding.ended:
                return

    def predict_batch(self, jobs: Sequence[GenerationJob]) -> list[Usage]:
        """Generations run one at a time, each with its own options."""
        return [self.generate(job) for job in jobs]

    def warm_up(self) -> None:
        self.generate(
            GenerationJob(WARM_UP_TEXT, GenerationOptions(max_new_tokens=4), discard_piece)
        )
