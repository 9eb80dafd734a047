"""A sequence classifier loaded with transformers; no gRPC here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from services.runtime.packed_linear import can_pack, pack_linears

WARM_UP_TEXT = "Warming up the classifier before it takes traffic."


@dataclass(frozen=True)
class LabelScore:
    """One label and its probability."""

    label: str
    score: float


class SequenceClassifier:
    """Any Hugging Face sequence-classification model, from a folder or a hub id."""

    def __init__(self, location: str, max_tokens: int = 256) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            location, dtype=torch.float32
        )
        self.model.eval()
        if can_pack():  # faster on every batch size measured: see packed_linear
            pack_linears(self.model)
        self.max_tokens = max_tokens
        id2label: dict[int, str] = self.model.config.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]

    def predict_batch(self, texts: Sequence[str]) -> list[list[LabelScore]]:
        """Scores of every label for each text, highest first."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode():
            probabilities = self.model(**encoded).logits.softmax(dim=-1).tolist()
        return ranked(self.labels, probabilities)

    def warm_up(self) -> None:
        self.predict_batch([WARM_UP_TEXT])


def ranked(
    labels: Sequence[str], probabilities: Sequence[Sequence[float]]
) -> list[list[LabelScore]]:
    """Each row's label scores, highest first (the answer of every classifier runtime)."""
    return [
        sorted(
            (LabelScore(label, score) for label, score in zip(labels, row, strict=True)),
            key=lambda ls: ls.score,
            reverse=True,
        )
        for row in probabilities
    ]
