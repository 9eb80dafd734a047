"""Switchyard's model services: one gRPC microservice per model family, on a shared runtime."""
