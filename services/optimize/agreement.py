"""How closely an optimized version answers like the version it was made from, and the
floors below which it is refused.

Speed is worth nothing if the answers change, so every optimized version is measured on
the held-out data against its reference before it is kept:

- classifier: ``agreement_label``, the share of texts whose top label is the reference's,
  and ``agreement_max_score_diff``, the largest difference of any label's score;
- NER: ``agreement_entity_f1``, the F1 of its entities against the reference's entities,
  ``agreement_entity_f1_delta``, its F1 on the test set minus the reference's, and
  ``agreement_entity_f1_ratio``, the one divided by the other.

An int8 model quantizes each run's activations with one scale taken from the whole run,
padding included, so a text's answer moves a little with the texts that share its batch
and with how the batch is cut into runs. Each figure is therefore the worst of it over
every cut the service makes: batches of 1 to 32 texts, each run whole and split into one
slice per core as this machine's service splits it. The figures are recorded in the
version's ``prepared.json`` and listed by ``ListModels``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from services.classifier.model import LabelScore

# Every top label that int8 changes on the held-out set is a near-tie: the reference's
# score for it lies within 0.06 of one half (0.507-0.551), and int8 moves a text's scores
# by up to 0.07 with the texts that share its batch. Over the served cuts 0 to 3 of the 224
# sentences flip, so the label floor allows four, and a ceiling on the largest score
# difference catches what a label count cannot (a broken model moves every score).
MIN_LABEL_AGREEMENT = 0.98
MAX_SCORE_DIFF = 0.1
# An entity agrees only with its exact span and type, so one word tagged differently at
# an entity's edge makes two disagreements: the starter model quantized to int8 agrees on
# about 0.977 of its entities while finding the test set's entities no worse than the
# reference (an F1 ratio above 1). The floors ask for both: close answers, kept quality.
MIN_ENTITY_AGREEMENT_F1 = 0.95
MIN_ENTITY_F1_RATIO = 0.98
CLASSIFIER_FLOORS: Mapping[str, float] = {"agreement_label": MIN_LABEL_AGREEMENT}
CLASSIFIER_CEILINGS: Mapping[str, float] = {"agreement_max_score_diff": MAX_SCORE_DIFF}
NER_FLOORS: Mapping[str, float] = {
    "agreement_entity_f1": MIN_ENTITY_AGREEMENT_F1,
    "agreement_entity_f1_ratio": MIN_ENTITY_F1_RATIO,
}
MEASUREMENT_REVISION = 2  # bump when what the measures below record changes: prepare re-measures
BATCH_SIZE = 32  # the largest batch the service forms (the registry's max_batch_size)
SERVED_BATCH_SIZES = (1, 2, 4, 8, 16, BATCH_SIZE)
# Figures where less is better; the worst of any other figure is its lowest.
LOWER_IS_BETTER = frozenset({"agreement_max_score_diff"})


def served_cuts() -> list[tuple[int, int]]:
    """(batch size, slices) of every cut measured: each served batch size run as one slice
    and split as this machine's service splits it (one slice per core)."""
    from services.runtime.onnx_runtime import intra_op_threads

    slices = sorted({1, intra_op_threads()})
    return [(size, count) for count in slices for size in SERVED_BATCH_SIZES]


def worst(measured: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each figure at its worst over ``measured`` (one mapping per cut)."""
    return {
        name: (max if name in LOWER_IS_BETTER else min)(m[name] for m in measured)
        for name in measured[0]
    }


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
    held-out set, with the candidate's held-out accuracy; each at its worst over the
    served cuts."""
    from services.classifier import training
    from services.classifier.model import SequenceClassifier
    from services.classifier.onnx_model import OnnxSequenceClassifier

    examples = training.read_examples(training.HELDOUT_FILE)
    texts = [e.text for e in examples]
    expected = training.predict_all(SequenceClassifier(str(reference)), texts, BATCH_SIZE)
    measured = []
    for size, slices in served_cuts():
        onnx = OnnxSequenceClassifier(str(candidate), threads=slices)
        got = training.predict_all(onnx, texts, size)
        right = sum(g[0].label == e.label for g, e in zip(got, examples, strict=True))
        measured.append({**label_agreement(expected, got), "heldout_accuracy": right / len(got)})
    return worst(measured)


def measure_ner(reference: Path, candidate: Path) -> dict[str, float]:
    """The eager NER model in ``reference`` against the ONNX one in ``candidate`` on the
    test set, with the candidate's test-set F1 and how it compares with the reference's;
    each at its worst over the served cuts."""
    from services.ner import training
    from services.ner.model import TokenClassifierNer
    from services.ner.onnx_model import OnnxTokenClassifierNer

    examples = training.read_examples(training.TEST_FILE)
    texts = [e.text for e in examples]
    gold = [set(e.entities) for e in examples]
    expected = training.predicted_spans(TokenClassifierNer(str(reference)), texts, BATCH_SIZE)
    reference_f1 = training.span_f1(expected, gold)
    measured = []
    for size, slices in served_cuts():
        onnx = OnnxTokenClassifierNer(str(candidate), threads=slices)
        got = training.predicted_spans(onnx, texts, size)
        candidate_f1 = training.span_f1(got, gold)
        measured.append(
            {
                "agreement_entity_f1": training.span_f1(got, expected),
                "agreement_entity_f1_delta": candidate_f1 - reference_f1,
                "agreement_entity_f1_ratio": (candidate_f1 / reference_f1 if reference_f1 else 0.0),
                "test_entity_f1": candidate_f1,
            }
        )
    return worst(measured)


def refuse_below_floor(
    version: str,
    reference: str,
    figures: Mapping[str, float],
    floors: Mapping[str, float],
    ceilings: Mapping[str, float] = MappingProxyType({}),
) -> None:
    """Stop ``switchyard models prepare`` with a clear message when any figure is below
    its floor or above its ceiling (a missing figure counts as outside)."""
    short = [
        f"{name} {figures[name]:.4f} is below the floor {floor}"
        if name in figures
        else f"{name} was not measured"
        for name, floor in floors.items()
        if not figures.get(name, float("-inf")) >= floor
    ] + [
        f"{name} {figures[name]:.4f} is above the ceiling {ceiling}"
        if name in figures
        else f"{name} was not measured"
        for name, ceiling in ceilings.items()
        if not figures.get(name, float("inf")) <= ceiling
    ]
    if short:
        raise SystemExit(
            f"{version} refused: it does not answer like {reference} closely enough"
            f" ({'; '.join(short)}). Keep the reference, or quantize less."
        )
