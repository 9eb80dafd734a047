"""The model services' RPCs by their full names (``package.Service/Method``), as the
gateway's client spans are named: looked up in the generated descriptors, so that a
renamed RPC fails at import rather than naming spans wrongly."""

from __future__ import annotations

from google.protobuf.descriptor import FileDescriptor

from switchyard.classifier.v1 import classifier_pb2
from switchyard.ner.v1 import ner_pb2
from switchyard.summarizer.v1 import summarizer_pb2


def _rpc(file: FileDescriptor, service: str, method: str) -> str:
    described = file.services_by_name[service]
    return f"{described.full_name}/{described.methods_by_name[method].name}"


CLASSIFY = _rpc(classifier_pb2.DESCRIPTOR, "ClassifierService", "Classify")
CLASSIFY_STREAM = _rpc(classifier_pb2.DESCRIPTOR, "ClassifierService", "ClassifyStream")
EXTRACT_ENTITIES = _rpc(ner_pb2.DESCRIPTOR, "NerService", "ExtractEntities")
EXTRACT_ENTITIES_STREAM = _rpc(ner_pb2.DESCRIPTOR, "NerService", "ExtractEntitiesStream")
SUMMARIZE = _rpc(summarizer_pb2.DESCRIPTOR, "SummarizerService", "Summarize")
SUMMARIZE_STREAM = _rpc(summarizer_pb2.DESCRIPTOR, "SummarizerService", "SummarizeStream")
GENERATE = _rpc(summarizer_pb2.DESCRIPTOR, "SummarizerService", "Generate")
