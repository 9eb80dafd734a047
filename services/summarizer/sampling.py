"""Drawing the next token from a step's logits with a seed of the request's own.

CTranslate2's sampler draws from a random generator that each of its threads seeds once,
the first time it samples, so a seed set for one request cannot repeat that request's
sample. Seeded generations of a CTranslate2 version draw here instead, with the same
filters, in the same order, as transformers' sampling: temperature, the 50 likeliest
tokens, then the nucleus of mass ``top_p``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TOP_K = 50
"""transformers' default top-k when sampling, which the reference version samples with."""


class TokenSampler:
    """Draws token ids from logits; the same seed and logits draw the same tokens."""

    def __init__(self, temperature: float, top_p: float, seed: int | None) -> None:
        if temperature <= 0:
            raise ValueError("sampling needs a temperature above 0")
        self._temperature = temperature
        self._top_p = top_p
        self._random = np.random.default_rng(seed)

    def draw(self, logits: npt.NDArray[np.float32]) -> int:
        """One token id from a step's logits (one per vocabulary entry)."""
        scores = logits.astype(np.float64).reshape(-1) / self._temperature
        k = min(TOP_K, scores.size)
        candidates = np.argpartition(scores, -k)[-k:]
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
        weights = np.exp(scores[candidates] - scores[candidates[0]])
        probabilities = weights / weights.sum()
        # The nucleus: the likeliest tokens until their mass reaches top_p (at least one).
        kept = (np.cumsum(probabilities) - probabilities) < self._top_p
        nucleus = probabilities[kept] / probabilities[kept].sum()
        return int(candidates[kept][self._random.choice(nucleus.size, p=nucleus)])
