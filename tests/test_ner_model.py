"""The starter NER model itself, without gRPC."""

from __future__ import annotations

from pathlib import Path

from services.ner import training

MIN_F1 = 0.8


def test_test_set_shares_no_sentence_shape_or_name_with_training() -> None:
    train = training.read_examples(training.TRAIN_FILE)
    test = training.read_examples(training.TEST_FILE)
    train_names = {e.text[s.start : s.end] for e in train for s in e.entities}
    test_names = {e.text[s.start : s.end] for e in test for s in e.entities}
    assert not train_names & test_names
    assert {s.label for e in test for s in e.entities} == {"PER", "ORG", "LOC"}


def test_entity_f1_on_unseen_names_and_shapes(prepared_models: Path) -> None:
    f1 = training.entity_f1(
        prepared_models / "ner" / "v1", training.read_examples(training.TEST_FILE)
    )
    assert f1 >= MIN_F1, f"entity F1 {f1:.3f}"


def test_token_tags_follow_the_spans() -> None:
    spans = [training.Span(0, 9, "PER")]
    offsets = [(0, 0), (0, 3), (4, 9), (10, 13), (0, 0)]
    special = [True, False, False, False, True]
    tags = [
        training.TAGS[t] if t >= 0 else None for t in training.token_tags(offsets, special, spans)
    ]
    assert tags == [None, "B-PER", "I-PER", "O", None]
