"""The training loop the starter models share: seeded mini-batch AdamW, then save."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

E = TypeVar("E")


def train_and_save(
    model: Any,
    tokenizer: Any,
    examples: Sequence[E],
    encode: Callable[[Sequence[E]], dict[str, torch.Tensor]],
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    rng: random.Random,
    out_dir: Path,
) -> None:
    """Train ``model`` on ``examples`` (``encode`` turns a batch into the model's keyword
    arguments, labels included), then save it with its tokenizer into ``out_dir``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    chosen = list(examples)
    model.train()
    for _ in range(epochs):
        rng.shuffle(chosen)
        for start in range(0, len(chosen), batch_size):
            loss = model(**encode(chosen[start : start + batch_size])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
