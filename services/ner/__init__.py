"""The NER service: finds people, organisations and places in texts over gRPC."""
