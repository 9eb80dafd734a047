"""How closely an optimized version answers like the version it was made from, and the
floors below which it is refused.

Speed is worth nothing if the answers change, so every optimized version is measured on
the held-out data against its reference before it is kept:

- classifier: ``agreement_label``, the share of texts whose top label is the reference's,
  and ``agreement_max_score_diff``, the largest difference of any label's score;
- NER: ``agreement_entity_f1``, the F1 of its entities against the reference's entities,
  ``agreement_entity_f1_delta``, its F1 on the test set minus the reference's, and
  ``agreement_entity_f1_ratio``, the one divided by the other.

The figures are recorded in the version's ``prepared.json`` and listed by ``ListModels``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from services.classifier.model import LabelScore

MIN_LABEL_AGREEMENT = 0.99
# An entity agrees only with its exact span and type, so one word tagged differently at
# an entity's edge makes two disagreements: the starter model quantized to int8 agrees on
# about 0.977 of its entities while finding the test set's entities no worse than the
# reference (an F1 ratio above 1). The floors ask for both: close answers, kept quality.
MIN_ENTITY_AGREEMENT_F1 = 0.95
MIN_ENTITY_F1_RATIO = 0.98
CLASSIFIER_FLOORS: Mapping[str, float] = {"agreement_label": MIN_LABEL_AGREEMENT}
NER_FLOORS: Mapping[str, float] = {
    "agreement_entity_f1": MIN_ENTITY_AGREEMENT_F1,
    "agreement_entity_f1_ratio": MIN_ENTITY_F1_RATIO,
}
MEASUREMENT_REVISION = 1  # bump when what the measures below record changes: prepare re-measures
BATCH_SIZE = 32  # the served batch size, so that padding is as in service
# An int8 model quantizes each run's activations with scales taken from the whole run, so
# its answers depend a little on how a batch is split into runs: measured as one run per
# batch, the figures are the same on every machine, whatever its core count.
ONE_SLICE = 1


def label_agreement(
    expected: Sequence[Sequence[LabelScore]], got: Sequence[Sequence[LabelScore]]
) -> dict[str, float]:
    """Top-label agreement of ``got`` with ``expected`` (one ranking per text), and the
    largest difference of any label's score."""
    pairs = list(zip(expected, got, strict=True))
    same_top = sum(e[0].label == g[0].label for e, g in pairs)
    largest = 0.0
    for e, g in pairs:
        scores = {s.label: s.score for s in g}
        largest = max(largest, *(abs(s.score - scores[s.label]) for s in e))
    return {"agreement_label": same_top / len(pairs), "agreement_max_score_diff": largest}


def measure_classifier(reference: Path, candidate: Path) -> dict[str, float]:
    """The eager classifier in ``reference`` against the ONNX one in ``candidate`` on the
    held-out set, with the candidate's held-out accuracy."""
    from services.classifier import training
    from services.classifier.model import SequenceClassifier
    from services.classifier.onnx_model import OnnxSequenceClassifier

    examples = training.read_examples(training.HELDOUT_FILE)
    texts = [e.text for e in examples]
    expected = training.predict_all(SequenceClassifier(str(reference)), texts, BATCH_SIZE)
    got = training.predict_all(
        OnnxSequenceClassifier(str(candidate), threads=ONE_SLICE), texts, BATCH_SIZE
    )
    right = sum(g[0].label == e.label for g, e in zip(got, examples, strict=True))
    return {**label_agreement(expected, got), "heldout_accuracy": right / len(examples)}


def measure_ner(reference: Path, candidate: Path) -> dict[str, float]:
    """The eager NER model in ``reference`` against the ONNX one in ``candidate`` on the
    test set, with the candidate's test-set F1 and how it compares with the reference's."""
    from services.ner import training
    from services.ner.model import TokenClassifierNer
    from services.ner.onnx_model import OnnxTokenClassifierNer

    examples = training.read_examples(training.TEST_FILE)
    texts = [e.text for e in examples]
    gold = [set(e.entities) for e in examples]
    expected = training.predicted_spans(TokenClassifierNer(str(reference)), texts, BATCH_SIZE)
    got = training.predicted_spans(
        OnnxTokenClassifierNer(str(candidate), threads=ONE_SLICE), texts, BATCH_SIZE
    )
    candidate_f1, reference_f1 = training.span_f1(got, gold), training.span_f1(expected, gold)
    return {
        "agreement_entity_f1": training.span_f1(got, expected),
        "agreement_entity_f1_delta": candidate_f1 - reference_f1,
        "agreement_entity_f1_ratio": candidate_f1 / reference_f1 if reference_f1 else 0.0,
        "test_entity_f1": candidate_f1,
    }


def refuse_below_floor(
    version: str, reference: str, figures: Mapping[str, float], floors: Mapping[str, float]
) -> None:
    """Stop ``switchyard models prepare`` with a clear message when any figure is below
    its floor (a missing figure counts as below)."""
    short = [
        f"{name} {figures[name]:.4f} is below the floor {floor}"
        if name in figures
        else f"{name} was not measured"
        for name, floor in floors.items()
        if not figures.get(name, float("-inf")) >= floor
    ]
    if short:
        raise SystemExit(
            f"{version} refused: it does not answer like {reference} closely enough"
            f" ({'; '.join(short)}). Keep the reference, or quantize less."
        )
