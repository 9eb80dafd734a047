"""Whether a canary is worse than stable, or only looks worse by chance: a one-sided
two-proportion z-test for error rates, and a one-sided Mann-Whitney U test for latency
read from the shared latency histograms (scipy's implementations); and the Wilson
interval of a rate, which experiments and shadow agreement share.

A guardrail rolls a canary back only on a difference that is both significant (the test's
p-value under ``alpha``) and material (past the guardrail's limit): with few samples a
large difference may be noise, and with many a tiny one is significant but harmless.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """A one-sided test of "the canary is worse than stable"."""

    test: str
    statistic: float
    p_value: float

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha

    def describe(self) -> str:
        return f"{self.test} {self.statistic:.3g}, p={self.p_value:.3g}"


def pooled_z(hits: int, n: int, base_hits: int, base_n: int) -> float | None:
    """The pooled two-proportion z statistic of ``hits/n`` against ``base_hits/base_n``;
    None when there is no difference to test (no samples, or one outcome only)."""
    if min(n, base_n) <= 0:
        return None
    pooled = (hits + base_hits) / (n + base_n)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / base_n))
    if spread == 0:  # no errors at all, or nothing but errors
        return None
    return (hits / n - base_hits / base_n) / spread


def wilson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a rate (good at small n and at rates near 0 or 1)."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rate = hits / n
    middle = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, middle - half), min(1.0, middle + half)


def error_rate_test(
    canary_errors: int, canary_requests: int, stable_errors: int, stable_requests: int
) -> TestResult:
    """The pooled two-proportion z-test of a higher canary error rate."""
    z = pooled_z(canary_errors, canary_requests, stable_errors, stable_requests)
    if z is None:
        return TestResult("two-proportion z", 0.0, 1.0)
    return TestResult("two-proportion z", z, float(stats.norm.sf(z)))


def latency_test(canary_bins: Mapping[int, int], stable_bins: Mapping[int, int]) -> TestResult:
    """The Mann-Whitney U test of canary latencies tending larger than stable's. The
    histogram bins stand for the values (every value of a bin ties with the others), which
    the test's tie correction accounts for."""
    canary, stable = _values(canary_bins), _values(stable_bins)
    if canary.size == 0 or stable.size == 0:
        return TestResult("Mann-Whitney U", 0.0, 1.0)
    if np.unique(np.concatenate((canary, stable))).size == 1:
        return TestResult("Mann-Whitney U", canary.size * stable.size / 2, 1.0)  # all tied
    found = stats.mannwhitneyu(canary, stable, alternative="greater", method="asymptotic")
    return TestResult("Mann-Whitney U", float(found.statistic), float(found.pvalue))


def _values(bins: Mapping[int, int]) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    indexes = np.fromiter(bins.keys(), dtype=np.int64, count=len(bins))
    counts = np.fromiter(bins.values(), dtype=np.int64, count=len(bins))
    return np.repeat(indexes, np.maximum(counts, 0))
