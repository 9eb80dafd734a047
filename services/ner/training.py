"""Fine-tuning and scoring of the starter NER model, seeded and repeatable. No gRPC here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from services.fine_tuning import seeded_rng, train_and_save

if TYPE_CHECKING:
    from services.ner.model import Entity
    from services.runtime.model import Predictor

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA_DIR / "ner_train.jsonl"
TEST_FILE = DATA_DIR / "ner_test.jsonl"
ENTITY_TYPES = ("PER", "ORG", "LOC")
TAGS = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")))
IGNORED = -100  # the loss skips special tokens and padding


@dataclass(frozen=True)
class TrainingPlan:
    epochs: int
    learning_rate: float
    batch_size: int = 16
    seed: int = 11


PLAN = TrainingPlan(epochs=4, learning_rate=8e-5)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Example:
    text: str
    entities: tuple[Span, ...]


def read_examples(path: Path) -> list[Example]:
    examples = []
    with path.open() as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                spans = tuple(Span(**e) for e in row["entities"])
                examples.append(Example(row["text"], spans))
    return examples


def token_tags(
    offsets: list[tuple[int, int]], special: list[bool], spans: Sequence[Span]
) -> list[int]:
    """The BIO tag id of each token, from the entity spans (special tokens ignored)."""
    tags = []
    for (start, end), is_special in zip(offsets, special, strict=True):
        if is_special or start == end:
            tags.append(IGNORED)
            continue
        tag = "O"
        for span in spans:
            if span.start <= start and end <= span.end:
                tag = ("B-" if start == span.start else "I-") + span.label
                break
        tags.append(TAGS.index(tag))
    return tags


def fine_tune(base: Path, examples: Sequence[Example], plan: TrainingPlan, out_dir: Path) -> None:
    rng = seeded_rng(plan.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(TAGS),
        id2label=dict(enumerate(TAGS)),
        label2id={tag: i for i, tag in enumerate(TAGS)},
        dtype=torch.float32,
    )

    def encode(batch: Sequence[Example]) -> dict[str, torch.Tensor]:
        encoded = tokenizer(
            [e.text for e in batch],
            padding=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping").tolist()
        special = encoded.pop("special_tokens_mask").tolist()
        tags = [
            token_tags([tuple(o) for o in offsets[i]], [bool(s) for s in special[i]], e.entities)
            for i, e in enumerate(batch)
        ]
        return {**encoded, "labels": torch.tensor(tags)}

    train_and_save(model, tokenizer, examples, encode, plan, rng, out_dir)


def entity_f1(location: Path | str, examples: Sequence[Example], batch_size: int = 64) -> float:
    """Entity-level F1 of the eager model in ``location`` on ``examples``."""
    from services.ner.model import TokenClassifierNer

    found = predicted_spans(
        TokenClassifierNer(str(location)), [e.text for e in examples], batch_size
    )
    return span_f1(found, [set(e.entities) for e in examples])


def predicted_spans(
    ner: Predictor[str, Sequence[Entity]], texts: Sequence[str], batch_size: int = 64
) -> list[set[Span]]:
    """The entities ``ner`` finds in each text, as spans."""
    found = []
    for first in range(0, len(texts), batch_size):
        for entities in ner.predict_batch(texts[first : first + batch_size]):
            found.append({Span(e.start, e.end, e.label) for e in entities})
    return found


def span_f1(found: Sequence[set[Span]], expected: Sequence[set[Span]]) -> float:
    """Entity-level F1 of ``found`` against ``expected``, text by text: an entity counts
    only with its exact span and type."""
    true_positive = sum(len(got & want) for got, want in zip(found, expected, strict=True))
    predicted, wanted = sum(map(len, found)), sum(map(len, expected))
    if not predicted or not wanted:
        return 0.0
    precision, recall = true_positive / predicted, true_positive / wanted
    return 0.0 if not precision + recall else 2 * precision * recall / (precision + recall)


def plan_fingerprint(plan: TrainingPlan, base: Path) -> dict[str, object]:
    return {
        "plan": asdict(plan),
        "train_data": TRAIN_FILE.read_text(),
        "tags": TAGS,
        "base_config": (base / "config.json").read_text(),
    }
