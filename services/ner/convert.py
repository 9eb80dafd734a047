"""Conversion between the NER service's protobuf messages and its domain objects."""

from __future__ import annotations

from collections.abc import Sequence

from services.ner.model import Entity
from switchyard.ner.v1 import ner_pb2 as pb


def entities_to_pb(entities: Sequence[Entity]) -> pb.EntityList:
    return pb.EntityList(
        entities=[
            pb.Entity(label=e.label, score=e.score, start=e.start, end=e.end, text=e.text)
            for e in entities
        ]
    )
