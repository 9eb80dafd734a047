"""ONNX Runtime sessions over exported model folders; no gRPC here.

A folder that ``switchyard models prepare`` exports holds ``model.onnx`` (inputs named as
the tokenizer's outputs, one output ``logits``) with the tokenizer and the model config
beside it, so it needs nothing else to run. ``onnxruntime`` is imported only when such a
folder loads: without the package, only the versions that need it fail to load.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
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
    """One exported model, run by ONNX Runtime on the CPU with full graph optimizations.

    A batch's rows are split into ``threads`` slices run side by side, each on one thread
    (the caller's and helper threads'), rather than one run on ``threads`` intra-op
    threads. ONNX Runtime lets go of the GIL for a whole run, so the slices really run at
    once, and a run on one thread never waits for another between its kernels. Measured
    with the int8 sentiment model on two cores, in the same run: batches of 8 to 32 at
    1.2-1.4 times the texts per second of one two-thread run, with less CPU per text; one
    text 1.1-1.2 times sooner on one thread than on two; served, 1.08 and 1.15 times the
    texts per second at c=32 and a c=1 p50 0.89-0.91 times as long (two interleaved A/Bs
    of 7 and 6 rounds). A single row runs on one core: for a model much larger than these,
    whose single rows would gain from several cores, this is the trade-off to revisit.
    """

    def __init__(self, folder: Path, threads: int) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise RuntimeNotInstalled(NOT_INSTALLED) from error
        path = folder / ONNX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {ONNX_FILE} in {folder}: run switchyard models prepare")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One thread per run: no intra-op pool, so no idle pool thread spins between runs
        # on the cores the gRPC event loop shares.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs: list[str] = [i.name for i in self._session.get_inputs()]
        self.slices = max(1, threads)
        """How many runs one batch is split into, at most (one per row at least)."""
        self._helpers = (
            ThreadPoolExecutor(self.slices - 1, thread_name_prefix="onnx-slice")
            if self.slices > 1
            else None
        )

    def logits(self, encoded: Mapping[str, Any]) -> Logits:
        """The model's logits for a tokenizer's numpy encoding (extra fields ignored)."""
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in self._inputs}
        rows = len(feeds[self._inputs[0]])
        bounds = [rows * i // self.slices for i in range(self.slices + 1)]
        parts = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
        if len(parts) <= 1 or self._helpers is None:
            return self._run(feeds)
        slices = [{k: v[a:b] for k, v in feeds.items()} for a, b in parts]
        others = [self._helpers.submit(self._run, rows) for rows in slices[1:]]
        return np.concatenate([self._run(slices[0]), *(f.result() for f in others)])

    def _run(self, feeds: Mapping[str, npt.NDArray[np.int64]]) -> Logits:
        (logits,) = self._session.run(["logits"], dict(feeds))
        return np.asarray(logits, dtype=np.float32)


def softmax(logits: Logits) -> Logits:
    """Probabilities over the last axis, as torch's softmax computes them."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)
