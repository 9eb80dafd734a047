"""The starter NER model itself, without gRPC."""

from __future__ import annotations

from pathlib import Path

from services.ner import training
from services.ner.model import _merge, _Word

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


def test_a_word_without_letters_never_joins_an_entity() -> None:
    # The model reads an emoji as an unknown token and may tag it as the start of a name.
    text = "🎉 Ada Lovelace moved to London."
    words = [
        _Word("B-PER", 0.9, 0, 1),
        _Word("B-PER", 0.9, 2, 5),
        _Word("I-PER", 0.9, 6, 14),
        _Word("O", 0.9, 15, 20),
        _Word("O", 0.9, 21, 23),
        _Word("B-LOC", 0.9, 24, 30),
    ]
    assert [(e.text, e.label) for e in _merge(words, text)] == [
        ("Ada Lovelace", "PER"),
        ("London", "LOC"),
    ]
