"""Process-wide torch settings, applied before any model loads."""

from __future__ import annotations

import contextlib
import os


def configure_torch(threads: int) -> None:
    """Use ``threads`` intra-op threads (0 keeps torch's default) and one inter-op thread.

    Several model processes share the machine's cores, so each one is told how many to use.
    """
    # Tokenizers' own thread pool would compete with torch's for the same cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    # Inter-op threads can be set only once, before the first parallel work.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
