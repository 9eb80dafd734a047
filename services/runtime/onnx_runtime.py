"""ONNX Runtime sessions over exported model folders; no gRPC here.

A folder that ``switchyard models prepare`` exports holds ``model.onnx`` (inputs named as
the tokenizer's outputs, one output ``logits``) with the tokenizer and the model config
beside it, so it needs nothing else to run. ``onnxruntime`` is imported only when such a
folder loads: without the package, only the versions that need it fail to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ONNX_FILE = "model.onnx"
NOT_INSTALLED = "runtime onnxruntime is not installed: pip install onnxruntime"

Logits = npt.NDArray[np.float32]


class RuntimeNotInstalled(RuntimeError):
    """A version names a runtime whose package this environment lacks."""


def intra_op_threads() -> int:
    """The service's thread budget for one forward pass.

    The service applies its TORCH_THREADS setting to torch before any model loads (and,
    at 0, torch counts the cores as ONNX Runtime would), so torch's count is the budget
    for every runtime in the process.
    """
    import torch

    return torch.get_num_threads()


class OnnxSession:
    """One exported model, run by ONNX Runtime on the CPU with full graph optimizations."""

    def __init__(self, folder: Path, threads: int, *, spinning: bool = False) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise RuntimeNotInstalled(NOT_INSTALLED) from error
        path = folder / ONNX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {ONNX_FILE} in {folder}: run switchyard models prepare")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # One pass runs at a time (the batcher's worker), so there is nothing to overlap.
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin between passes, taking the cores that the
        # gRPC event loop and the other versions' workers share: spinning gained ~15% on a
        # quiet machine, and lost about half the throughput while other processes ran.
        # (A raw loop with nothing else running may spin: see bench/raw.py.)
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        self._session: Any = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs: list[str] = [i.name for i in self._session.get_inputs()]

    def logits(self, encoded: Mapping[str, Any]) -> Logits:
        """The model's logits for a tokenizer's numpy encoding (extra fields ignored)."""
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in self._inputs}
        (logits,) = self._session.run(["logits"], feeds)
        return np.asarray(logits, dtype=np.float32)


def softmax(logits: Logits) -> Logits:
    """Probabilities over the last axis, as torch's softmax computes them."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)
