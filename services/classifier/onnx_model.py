"""A sequence classifier exported to ONNX, run by ONNX Runtime; no gRPC here.

It answers as ``SequenceClassifier`` does (every label's softmax score, highest first),
from a folder that ``switchyard models prepare`` exported from an eager version.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from services.classifier.model import WARM_UP_TEXT, LabelScore, ranked
from services.runtime.onnx_runtime import OnnxSession, intra_op_threads, softmax


class OnnxSequenceClassifier:
    """A sequence-classification model folder holding ``model.onnx``, its tokenizer and
    its config (for the labels)."""

    def __init__(
        self,
        location: str,
        max_tokens: int = 256,
        threads: int | None = None,
    ) -> None:
        folder = Path(location)
        self.session = OnnxSession(folder, intra_op_threads() if threads is None else threads)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        id2label: dict[int, str] = AutoConfig.from_pretrained(folder).id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.max_tokens = max_tokens

    def predict_batch(self, texts: Sequence[str]) -> list[list[LabelScore]]:
        """Scores of every label for each text, highest first."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="np",
        )
        probabilities = softmax(self.session.logits(encoded))
        return ranked(self.labels, probabilities.tolist())

    def warm_up(self) -> None:
        self.predict_batch([WARM_UP_TEXT])
