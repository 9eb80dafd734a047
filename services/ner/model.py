"""A token-classification NER model loaded with transformers; no gRPC here.

Entities are built from word-level predictions (each word takes its first piece's label,
BIO tags merged into spans), and their text is sliced from the original string by the
tokenizer's offsets, which count code points: an uncased model still returns "Paris",
not "paris".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, BatchEncoding

from services.runtime.packed_linear import can_pack, pack_linears

WARM_UP_TEXT = "Ada Lovelace met Charles Babbage in London."


@dataclass(frozen=True)
class Entity:
    """One entity: its type, confidence, and code-point span in the original text."""

    label: str
    score: float
    start: int
    end: int
    text: str


@dataclass
class _Word:
    tag: str
    score: float
    start: int
    end: int


class TokenClassifierNer:
    """Any Hugging Face token-classification model with BIO labels and a fast tokenizer."""

    def __init__(self, location: str, max_tokens: int = 256) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        if not self.tokenizer.is_fast:
            raise ValueError("NER needs a fast tokenizer: offsets map entities to the text")
        self.model = AutoModelForTokenClassification.from_pretrained(location, dtype=torch.float32)
        self.model.eval()
        if can_pack():  # faster on every batch size measured: see packed_linear
            pack_linears(self.model)
        self.max_tokens = max_tokens
        id2label: dict[int, str] = self.model.config.id2label
        self.tags = [id2label[i] for i in range(len(id2label))]
        self.labels = sorted({t.split("-", 1)[1] for t in self.tags if "-" in t})

    def predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        """The entities of each text, in text order."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping").tolist()
        with torch.inference_mode():
            probabilities = self.model(**encoded).logits.softmax(dim=-1).numpy()
        return decode_entities(self.tags, texts, encoded, offsets, probabilities)

    def warm_up(self) -> None:
        self.predict_batch([WARM_UP_TEXT])


def decode_entities(
    tags: Sequence[str],
    texts: Sequence[str],
    encoded: BatchEncoding,
    offsets: list[list[list[int]]],
    probabilities: npt.NDArray[np.float32],
) -> list[list[Entity]]:
    """Each text's entities from its tokens' tag probabilities (batch, token, tag), the
    same for every runtime: the encoding gives each token's word, the offsets its span."""
    best = probabilities.argmax(axis=-1).tolist()
    scores = probabilities.max(axis=-1).tolist()
    return [
        _merge(_words(tags, encoded.word_ids(row), best[row], scores[row], offsets[row]), text)
        for row, text in enumerate(texts)
    ]


def _words(
    tags: Sequence[str],
    word_ids: list[int | None],
    best: list[int],
    scores: list[float],
    offsets: list[list[int]],
) -> list[_Word]:
    words: dict[int, _Word] = {}
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[position]
        if word not in words:
            words[word] = _Word(tags[best[position]], scores[position], start, end)
        else:
            words[word].end = end  # later pieces extend the word, the first one labels it
    return [words[w] for w in sorted(words)]


def _merge(words: list[_Word], text: str) -> list[Entity]:
    """BIO word tags to entity spans; an I- tag that continues nothing starts an entity."""
    entities: list[Entity] = []
    current: tuple[str, int, int, list[float]] | None = None

    def close() -> None:
        if current is not None:
            label, start, end, word_scores = current
            entities.append(
                Entity(label, sum(word_scores) / len(word_scores), start, end, text[start:end])
            )

    for word in words:
        # A word with no letter or digit (an emoji read as an unknown token) is never part
        # of an entity, even when the model tags it so.
        tag = word.tag if any(ch.isalnum() for ch in text[word.start : word.end]) else "O"
        prefix, _, label = tag.partition("-")
        # A B- tag right after an entity of the same type, one space apart, continues it:
        # two entities of one type are almost never written with nothing between them, while
        # a small model often tags each word of an unfamiliar name B-PER.
        continues = (
            current is not None
            and current[0] == label
            and (prefix == "I" or (prefix == "B" and text[current[2] : word.start] == " "))
        )
        if continues and current is not None:
            current = (label, current[1], word.end, [*current[3], word.score])
            continue
        close()
        current = (label, word.start, word.end, [word.score]) if label else None
    close()
    return entities
