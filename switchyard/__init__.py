"""Switchyard: NLP models served as gRPC microservices behind an HTTP edge gateway."""
