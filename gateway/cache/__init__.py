"""Answers of deterministic models (classifier, NER) cached per text and version."""
