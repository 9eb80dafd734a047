"""Linear layers on oneDNN with their weights laid out once, ahead of every call.

PyTorch's float32 linear layer (MKL's sgemm here) lays the weight matrix out afresh on
every call, which weighs most when a call has few rows. Measured on one core of this CPU
against PyTorch's own, in the same interleaved runs, oneDNN's linear on weights reordered
once (the layout PyTorch's own compiler gives a frozen CPU model):

- SmolLM2-135M, a pass of 2 to 11 rows (the last token and its drafts): 1.5 to 2.2 times
  a one-row pass on PyTorch's own, 1.0 to 1.3 times on oneDNN; the prompt's pass (100
  tokens) 1.1 to 1.5 times less;
- the MiniLM sentiment classifier, tokenization included: one text 1.42 times the texts
  per second, batches of 8 to 64 1.09 to 1.32 times, on one and two threads.

Its sums run in another order, so outputs differ in the last bits (scores by about 1e-7,
a language model's logits below 1e-4): the tests and the benchmark check a generator's
greedy tokens against its reference's, and prepare checks the optimized versions against
the packed reference.
"""

from __future__ import annotations

import torch
from torch import nn


class PackedLinear(nn.Module):
    """``nn.Linear``'s product on oneDNN, with the weight in oneDNN's own layout."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.out_features = linear.out_features
        # No batch size hint: oneDNN's default layout measured best from 1 to 100 rows.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            rows, self.packed, self.bias, "none", [], ""
        )
        return out.reshape(*x.shape[:-1], self.out_features)


def can_pack() -> bool:
    """Whether this PyTorch build has oneDNN (x86 and Arm wheels do)."""
    return bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]


def pack_linears(model: nn.Module) -> None:
    """Replace every float32 ``nn.Linear`` in ``model`` by a ``PackedLinear``, in place.
    A weight tied to an embedding stays the embedding's; the layer gets its own copy."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child.weight.dtype == torch.float32:
                setattr(module, name, PackedLinear(child))
