"""Fine-tuning of the starter sentiment classifier, seeded and repeatable. No gRPC here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from services.fine_tuning import seeded_rng, train_and_save

if TYPE_CHECKING:
    from services.classifier.model import LabelScore
    from services.runtime.model import Predictor

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA_DIR / "sentiment_train.jsonl"
HELDOUT_FILE = DATA_DIR / "sentiment_heldout.jsonl"
LABELS = ("negative", "positive")


@dataclass(frozen=True)
class TrainingPlan:
    """How one version is trained: how much data, how long, how fast."""

    examples: int  # 0 takes the whole training set
    epochs: int
    learning_rate: float
    batch_size: int = 16
    seed: int = 7


# v2 is meant to beat v1: it sees all the data, for more epochs.
PLANS = {
    "v1": TrainingPlan(examples=128, epochs=3, learning_rate=8e-5),
    "v2": TrainingPlan(examples=0, epochs=6, learning_rate=6e-5),
}


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def read_examples(path: Path) -> list[Example]:
    with path.open() as f:
        return [Example(**json.loads(line)) for line in f if line.strip()]


def fine_tune(base: Path, examples: Sequence[Example], plan: TrainingPlan, out_dir: Path) -> None:
    """Train a classification head (and the encoder) on ``examples``; save to ``out_dir``."""
    rng = seeded_rng(plan.seed)
    chosen = list(examples)
    rng.shuffle(chosen)
    if plan.examples:
        chosen = chosen[: plan.examples]
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        dtype=torch.float32,
    )

    def encode(batch: Sequence[Example]) -> dict[str, torch.Tensor]:
        encoded = tokenizer([e.text for e in batch], padding=True, return_tensors="pt")
        return {**encoded, "labels": torch.tensor([LABELS.index(e.label) for e in batch])}

    train_and_save(model, tokenizer, chosen, encode, plan, rng, out_dir)


def accuracy(location: Path | str, examples: Sequence[Example], batch_size: int = 64) -> float:
    """Share of ``examples`` whose top label the eager model in ``location`` gets right."""
    from services.classifier.model import SequenceClassifier

    classifier = SequenceClassifier(str(location))
    predictions = predict_all(classifier, [e.text for e in examples], batch_size)
    right = sum(p[0].label == e.label for p, e in zip(predictions, examples, strict=True))
    return right / len(examples)


def predict_all(
    classifier: Predictor[str, Sequence[LabelScore]], texts: Sequence[str], batch_size: int = 64
) -> list[Sequence[LabelScore]]:
    """Every text's label scores, highest first, run ``batch_size`` texts at a time."""
    predictions: list[Sequence[LabelScore]] = []
    for start in range(0, len(texts), batch_size):
        predictions.extend(classifier.predict_batch(texts[start : start + batch_size]))
    return predictions


def plan_fingerprint(plan: TrainingPlan, base: Path) -> dict[str, object]:
    """What determines a trained version: change any of it and prepare trains again."""
    return {
        "plan": asdict(plan),
        "train_data": TRAIN_FILE.read_text(),
        "base_config": (base / "config.json").read_text(),
    }
