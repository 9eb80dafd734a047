"""The ONNX Runtime versions, without gRPC: real exported models and real ONNX Runtime.

Each one loads, warms, predicts like its eager reference and agrees with it within the
floors; a version below a floor is refused at prepare time and nothing of it is kept.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.classifier import training
from services.classifier.model import LabelScore, SequenceClassifier
from services.classifier.onnx_model import OnnxSequenceClassifier
from services.classifier.service import load_classifier
from services.ner.model import TokenClassifierNer
from services.ner.onnx_model import OnnxTokenClassifierNer
from services.optimize import agreement
from services.optimize.build import optimized_families, prepare_version
from services.prepare import MARKER
from services.runtime.registry import VersionSpec

TEXTS = ["I love this", "I hate this", "What a dull, slow film", "A wonderful day out"]
HELDOUT = [e.text for e in training.read_examples(training.HELDOUT_FILE)]
NER_TEXTS = [
    "Ada Lovelace met Charles Babbage in London.",
    "Ingrid Halvorsen moved from Oslo to Lisbon to work for Siemens.",
]


def recorded(folder: Path) -> dict[str, float]:
    figures: dict[str, float] = json.loads((folder / MARKER).read_text())["figures"]
    return figures


@pytest.fixture(scope="module")
def v1_on_heldout(prepared_models: Path) -> list[Sequence[LabelScore]]:
    """Sentiment v1's eager answers on the held-out set: the reference, computed once."""
    eager = SequenceClassifier(str(prepared_models / "sentiment" / "v1"))
    return training.predict_all(eager, HELDOUT, agreement.BATCH_SIZE)


@pytest.mark.parametrize("version", ["v1-onnx", "v1-int8"])
def test_an_onnx_sentiment_version_answers_like_v1_within_the_floor(
    prepared_models: Path, v1_on_heldout: list[Sequence[LabelScore]], version: str
) -> None:
    folder = prepared_models / "sentiment" / version
    onnx = OnnxSequenceClassifier(str(folder), threads=1)
    onnx.warm_up()
    for scores, text in zip(onnx.predict_batch(TEXTS), TEXTS, strict=True):
        assert [s.score for s in scores] == sorted((s.score for s in scores), reverse=True)
        assert abs(sum(s.score for s in scores) - 1.0) < 1e-5
        assert scores[0].label == (
            "positive" if "love" in text or "wonderful" in text else "negative"
        )
    cuts = []
    for size, slices in agreement.served_cuts():
        served = OnnxSequenceClassifier(str(folder), threads=slices)
        got = training.predict_all(served, HELDOUT, size)
        cuts.append(agreement.label_agreement(v1_on_heldout, got))
    # What prepare recorded (and ListModels shows) is the worst of every cut the service
    # makes, so no way of batching the held-out texts answers less like v1.
    figures = {k: v for k, v in recorded(folder).items() if k.startswith("agreement_")}
    assert agreement.worst(cuts) == pytest.approx(figures, abs=1e-4)
    assert all(cut["agreement_label"] >= figures["agreement_label"] - 1e-9 for cut in cuts)
    assert figures["agreement_label"] >= agreement.MIN_LABEL_AGREEMENT
    assert figures["agreement_max_score_diff"] <= agreement.MAX_SCORE_DIFF


def test_the_float32_export_gives_the_eager_scores(prepared_models: Path) -> None:
    onnx = OnnxSequenceClassifier(str(prepared_models / "sentiment" / "v1-onnx"), threads=1)
    eager = SequenceClassifier(str(prepared_models / "sentiment" / "v1"))
    figures = agreement.label_agreement(eager.predict_batch(TEXTS), onnx.predict_batch(TEXTS))
    assert figures == {
        "agreement_label": 1.0,
        "agreement_max_score_diff": pytest.approx(0, abs=1e-4),
    }


def test_a_batch_split_into_one_thread_runs_gives_one_runs_answers(
    prepared_models: Path,
) -> None:
    folder = prepared_models / "sentiment" / "v1-onnx"
    whole = OnnxSequenceClassifier(str(folder), threads=1)
    split = OnnxSequenceClassifier(str(folder), threads=3)
    runs: list[tuple[str, int]] = []
    run = split.session._run

    def noting_thread(feeds: Mapping[str, Any]) -> Any:
        runs.append((threading.current_thread().name, len(feeds["input_ids"])))
        return run(feeds)

    split.session._run = noting_thread  # type: ignore[method-assign]
    texts = [*TEXTS, "Fine.", "A long and winding review of a film that never quite lands"]
    for batch, slices in ((texts, [2, 2, 2]), (texts[:2], [1, 1]), (texts[:1], [1])):
        runs.clear()
        got = split.predict_batch(batch)
        assert sorted(rows for _, rows in runs) == slices
        # The caller runs one slice itself; the others run on helper threads.
        assert [name for name, _ in runs].count(threading.current_thread().name) == 1
        assert [[s.label for s in row] for row in got] == [
            [s.label for s in row] for row in whole.predict_batch(batch)
        ]
        assert [s.score for row in got for s in row] == pytest.approx(
            [s.score for row in whole.predict_batch(batch) for s in row], abs=1e-6
        )


@pytest.mark.parametrize("version", ["v1-onnx", "v1-int8"])
def test_an_onnx_ner_version_finds_the_entities_v1_finds(
    prepared_models: Path, version: str
) -> None:
    folder = prepared_models / "ner" / version
    onnx = OnnxTokenClassifierNer(str(folder), threads=1)
    onnx.warm_up()
    eager = TokenClassifierNer(str(prepared_models / "ner" / "v1"))
    assert onnx.labels == eager.labels == ["LOC", "ORG", "PER"]
    spans = [
        [(e.label, e.start, e.end, e.text) for e in found]
        for found in eager.predict_batch(NER_TEXTS)
    ]
    assert [
        [(e.label, e.start, e.end, e.text) for e in found]
        for found in onnx.predict_batch(NER_TEXTS)
    ] == spans
    figures = agreement.measure_ner(prepared_models / "ner" / "v1", folder)
    for name, floor in agreement.NER_FLOORS.items():
        assert figures[name] >= floor, (name, figures)
    assert figures == pytest.approx(recorded(folder))


def test_a_model_that_answers_differently_is_refused(prepared_models: Path) -> None:
    # v2 is another model (trained on more data), not an optimization of v1-int8: measured
    # against it, v1-int8 falls below the floor, and the gate says so.
    figures = agreement.measure_classifier(
        prepared_models / "sentiment" / "v2", prepared_models / "sentiment" / "v1-int8"
    )
    assert figures["agreement_label"] < agreement.MIN_LABEL_AGREEMENT
    with pytest.raises(SystemExit, match=r"sentiment v1-int8 refused: .* like v2") as refused:
        agreement.refuse_below_floor(
            "sentiment v1-int8", "v2", figures, agreement.CLASSIFIER_FLOORS
        )
    assert "agreement_label" in str(refused.value)


def test_scores_moved_past_the_ceiling_are_refused_even_with_every_label_kept() -> None:
    figures = {"agreement_label": 1.0, "agreement_max_score_diff": 0.25}
    with pytest.raises(
        SystemExit, match=r"agreement_max_score_diff 0\.2500 is above the ceiling 0\.1"
    ):
        agreement.refuse_below_floor(
            "sentiment v1-int8",
            "v1",
            figures,
            agreement.CLASSIFIER_FLOORS,
            agreement.CLASSIFIER_CEILINGS,
        )
    with pytest.raises(SystemExit, match="agreement_max_score_diff was not measured"):
        agreement.refuse_below_floor(
            "sentiment v1-int8",
            "v1",
            {"agreement_label": 1.0},
            agreement.CLASSIFIER_FLOORS,
            agreement.CLASSIFIER_CEILINGS,
        )


def test_prepare_refuses_a_version_below_its_floor_and_keeps_nothing_of_it(
    prepared_models: Path, tmp_path: Path
) -> None:
    # The reference and its float32 export are the prepared ones; the int8 version is
    # quantized and measured for real, against a floor no model can meet.
    (tmp_path / "sentiment").mkdir()
    for name in ("v1", "v1-onnx"):
        (tmp_path / "sentiment" / name).symlink_to(prepared_models / "sentiment" / name)
    reference = VersionSpec(model="sentiment", version="v1", weights="sentiment/v1")
    spec = VersionSpec(
        model="sentiment",
        version="v1-int8",
        weights="sentiment/v1-int8",
        runtime="onnxruntime",
        quantization="int8",
        reference="v1",
    )
    (family,) = (f for f in optimized_families() if f.service == "classifier")
    with pytest.raises(
        SystemExit,
        # Any agreement is below a floor above 1 (int8 may well agree on every text).
        match=r"sentiment v1-int8 refused: .*agreement_label [01]\.\d+ is below the floor 1\.01",
    ):
        prepare_version(family, spec, reference, tmp_path, floors={"agreement_label": 1.01})
    assert sorted(p.name for p in (tmp_path / "sentiment").iterdir()) == ["v1", "v1-onnx"]


def test_a_runtime_the_classifier_cannot_run_is_a_clear_load_error(prepared_models: Path) -> None:
    spec = VersionSpec(
        model="sentiment", version="v9", weights="sentiment/v1", runtime="ctranslate2"
    )
    with pytest.raises(ValueError, match="runtime ctranslate2 does not run classifiers"):
        load_classifier(spec, str(prepared_models / "sentiment" / "v1"))
