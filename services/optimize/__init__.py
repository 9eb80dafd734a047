"""Optimized model versions: exported to ONNX, optionally quantized to int8, and checked
against the version they were made from before they may serve."""
