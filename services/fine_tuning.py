"""The training loop the starter models share: seeded mini-batch AdamW, then save."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

E = TypeVar("E")


class FineTuningPlan(Protocol):
    """What the loop needs from a model's training plan."""

    @property
    def epochs(self) -> int: ...

    @property
    def learning_rate(self) -> float: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def seed(self) -> int: ...


def seeded_rng(seed: int) -> random.Random:
    """Seed Python's and torch's generators (a new head's weights come from torch's), and
    return a generator of our own for shuffling."""
    random.seed(seed)
    torch.manual_seed(seed)
    return random.Random(seed)


def train_and_save(
    model: Any,
    tokenizer: Any,
    examples: Sequence[E],
    encode: Callable[[Sequence[E]], dict[str, torch.Tensor]],
    plan: FineTuningPlan,
    rng: random.Random,
    out_dir: Path,
) -> None:
    """Train ``model`` on ``examples`` (``encode`` turns a batch into the model's keyword
    arguments, labels included), then save it with its tokenizer into ``out_dir``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate)
    chosen = list(examples)
    model.train()
    for _ in range(plan.epochs):
        rng.shuffle(chosen)
        for start in range(0, len(chosen), plan.batch_size):
            loss = model(**encode(chosen[start : start + plan.batch_size])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
