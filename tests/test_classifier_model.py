"""The starter sentiment models themselves, without gRPC."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from services.classifier import training
from services.classifier.model import SequenceClassifier
from services.runtime.packed_linear import PackedLinear

MARGIN = 0.05


@pytest.fixture(scope="module")
def heldout() -> list[training.Example]:
    return training.read_examples(training.HELDOUT_FILE)


def test_training_and_heldout_sets_are_separate_and_large_enough(
    heldout: list[training.Example],
) -> None:
    train = training.read_examples(training.TRAIN_FILE)
    assert len(train) >= 300 and len(heldout) >= 100
    assert not {e.text for e in train} & {e.text for e in heldout}
    assert {e.label for e in train} == {e.label for e in heldout} == set(training.LABELS)
    assert any(" not " in e.text.lower() for e in train)  # negation is taught


def test_v2_beats_v1_on_heldout_sentences(
    prepared_models: Path, heldout: list[training.Example]
) -> None:
    v1 = training.accuracy(prepared_models / "sentiment" / "v1", heldout)
    v2 = training.accuracy(prepared_models / "sentiment" / "v2", heldout)
    assert v2 >= v1 + MARGIN, f"v1 {v1:.3f}, v2 {v2:.3f}"
    assert v1 > 0.6  # v1 is a weaker model, not a broken one


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_starter_model_reads_plain_sentiment(prepared_models: Path, version: str) -> None:
    classifier = SequenceClassifier(str(prepared_models / "sentiment" / version))
    assert classifier.labels == ["negative", "positive"]
    results = classifier.predict_batch(["I love this", "I hate this"])
    assert [r[0].label for r in results] == ["positive", "negative"]


def test_the_eager_models_run_on_packed_linear_layers_with_plain_pytorchs_scores(
    prepared_models: Path, heldout: list[training.Example]
) -> None:
    """Packed for oneDNN at load, every linear layer; the scores stay PyTorch's own but
    for the order of their sums."""
    folder = prepared_models / "sentiment" / "v1"
    packed = SequenceClassifier(str(folder))
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in packed.model.modules())
    plain = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    texts = [e.text for e in heldout[:32]]
    encoded = packed.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = plain.eval()(**encoded).logits.softmax(dim=-1)
    got = packed.predict_batch(texts)
    for row, scores in zip(expected.tolist(), got, strict=True):
        by_label = {s.label: s.score for s in scores}
        assert (
            max(abs(by_label[label] - p) for label, p in zip(packed.labels, row, strict=True))
            < 1e-5
        )
