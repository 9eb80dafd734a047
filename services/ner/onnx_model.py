"""A token-classification NER model exported to ONNX, run by ONNX Runtime; no gRPC here.

It finds the same entities as ``TokenClassifierNer``: the ONNX logits go through the same
word and BIO post-processing, with the same fast tokenizer's offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from services.ner.model import WARM_UP_TEXT, Entity, decode_entities
from services.runtime.onnx_runtime import OnnxSession, intra_op_threads, softmax


class OnnxTokenClassifierNer:
    """A token-classification model folder holding ``model.onnx``, its fast tokenizer and
    its config (for the BIO tags)."""

    def __init__(self, location: str, max_tokens: int = 256, threads: int | None = None) -> None:
        folder = Path(location)
        self.session = OnnxSession(folder, intra_op_threads() if threads is None else threads)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if not self.tokenizer.is_fast:
            raise ValueError("NER needs a fast tokenizer: offsets map entities to the text")
        id2label: dict[int, str] = AutoConfig.from_pretrained(folder).id2label
        self.tags = [id2label[i] for i in range(len(id2label))]
        self.labels = sorted({t.split("-", 1)[1] for t in self.tags if "-" in t})
        self.max_tokens = max_tokens

    def predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        """The entities of each text, in text order."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        offsets = encoded.pop("offset_mapping").tolist()
        probabilities = softmax(self.session.logits(encoded))
        return decode_entities(self.tags, texts, encoded, offsets, probabilities)

    def warm_up(self) -> None:
        self.predict_batch([WARM_UP_TEXT])
