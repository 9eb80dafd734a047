"""The classifier service: labels texts (sentiment, for the starter model) over gRPC."""
