"""Conversion between the classifier's protobuf messages and its domain objects."""

from __future__ import annotations

from collections.abc import Sequence

from services.classifier.model import LabelScore
from switchyard.classifier.v1 import classifier_pb2 as pb


def classification_to_pb(scores: Sequence[LabelScore], top_k: int) -> pb.Classification:
    kept = scores[:top_k] if top_k else scores
    return pb.Classification(labels=[pb.LabelScore(label=s.label, score=s.score) for s in kept])
