"""What the outcomes of each version say, and whether a difference from the baseline is
real: rates with Wilson intervals and a two-proportion z-test, numbers with a t interval
and a Mann-Whitney U test, labels with their shares and a chi-square test (scipy's).
With too few outcomes to tell, the result says so instead of guessing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gateway.experiments.outcomes import Outcome
from gateway.routing.significance import pooled_z
from gateway.routing.significance import wilson as wilson  # the experiments' rates use it

CONFIDENCE = 0.95
MIN_RATE_COUNT = 5
"""Fewest successes and failures each for the normal approximation of a rate's test."""
MIN_NUMBERS = 20
"""Fewest numbers each for a rank test worth reading."""


@dataclass(frozen=True)
class Comparison:
    """A two-sided test of a version's outcomes against the baseline's."""

    test: str
    statistic: float
    p_value: float


BASELINE: tuple[Comparison | None, str] = (None, "the baseline the others are compared with")


@dataclass(frozen=True)
class VariantResult:
    version: str
    kind: str
    """"rate" (true/false outcomes), "mean" (numbers) or "labels"."""
    n: int
    estimate: float | None
    """The rate or the mean (None for labels)."""
    low: float | None
    high: float | None
    shares: dict[str, float]
    """Labels only: each label's share."""
    baseline: bool
    comparison: Comparison | None
    """Against the baseline version (None for the baseline itself, or too few outcomes)."""
    note: str


def results(outcomes: Mapping[str, Sequence[Outcome]], baseline: str) -> list[VariantResult]:
    """Per version and kind of outcome, the baseline's rows first."""
    rows = []
    for kind in ("rate", "mean", "labels"):
        split = {v: _of_kind(values, kind) for v, values in outcomes.items()}
        base = split.get(baseline, [])
        for version in sorted(split, key=lambda v: (v != baseline, v)):
            if split[version]:
                rows.append(_row(version, kind, split[version], version == baseline, base))
    return rows


def _of_kind(values: Sequence[Outcome], kind: str) -> list[Outcome]:
    if kind == "rate":
        return [v for v in values if isinstance(v, bool)]
    if kind == "mean":
        return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return [v for v in values if isinstance(v, str)]


def _row(
    version: str, kind: str, values: list[Outcome], is_base: bool, base: list[Outcome]
) -> VariantResult:
    if kind == "rate":
        hits, n = sum(1 for v in values if v is True), len(values)
        low, high = wilson(hits, n, CONFIDENCE)
        compared, note = BASELINE if is_base else _compare_rates(hits, n, base)
        return VariantResult(version, kind, n, hits / n, low, high, {}, is_base, compared, note)
    if kind == "mean":
        numbers = np.asarray(values, dtype=float)
        low, high = t_interval(numbers)
        compared, note = BASELINE if is_base else _compare_numbers(numbers, base)
        mean = float(numbers.mean())
        return VariantResult(
            version, kind, len(values), mean, low, high, {}, is_base, compared, note
        )
    counts = Counter(str(v) for v in values)
    shares = {label: c / len(values) for label, c in sorted(counts.items())}
    compared, note = BASELINE if is_base else _compare_labels(counts, base)
    return VariantResult(
        version, kind, len(values), None, None, None, shares, is_base, compared, note
    )


def t_interval(numbers: np.ndarray[tuple[int], np.dtype[np.float64]]) -> tuple[float, float]:
    mean = float(numbers.mean())
    if numbers.size < 2:
        return mean, mean
    spread = float(stats.sem(numbers))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, numbers.size - 1)) * spread
    return mean - half, mean + half


def _compare_rates(hits: int, n: int, base: list[Outcome]) -> tuple[Comparison | None, str]:
    if not base:
        return None, "no baseline outcomes to compare with"
    base_hits, base_n = sum(1 for v in base if v is True), len(base)
    if min(hits, n - hits, base_hits, base_n - base_hits) < MIN_RATE_COUNT:
        return None, f"too few to tell: need {MIN_RATE_COUNT} of each outcome in each version"
    z = pooled_z(hits, n, base_hits, base_n)
    assert z is not None  # both outcomes seen in both versions
    p = float(2 * stats.norm.sf(abs(z)))
    return Comparison("two-proportion z", z, p), _verdict(p)


def _compare_numbers(
    numbers: np.ndarray[tuple[int], np.dtype[np.float64]], base: list[Outcome]
) -> tuple[Comparison | None, str]:
    if not base:
        return None, "no baseline outcomes to compare with"
    if min(numbers.size, len(base)) < MIN_NUMBERS:
        return None, f"too few to tell: need {MIN_NUMBERS} numbers in each version"
    found = stats.mannwhitneyu(numbers, np.asarray(base, dtype=float), alternative="two-sided")
    p = float(found.pvalue)
    return Comparison("Mann-Whitney U", float(found.statistic), p), _verdict(p)


def _compare_labels(counts: Counter[str], base: list[Outcome]) -> tuple[Comparison | None, str]:
    base_counts = Counter(str(v) for v in base)
    labels = sorted(set(counts) | set(base_counts))
    table = np.array([[counts[x] for x in labels], [base_counts[x] for x in labels]])
    if not base or len(labels) < 2:
        return None, "nothing to compare: one label, or no baseline outcomes"
    found = stats.chi2_contingency(table)
    if float(found.expected_freq.min()) < MIN_RATE_COUNT:
        return None, f"too few to tell: every label needs {MIN_RATE_COUNT} expected outcomes"
    p = float(found.pvalue)
    return Comparison("chi-square", float(found.statistic), p), _verdict(p)


def _verdict(p: float) -> str:
    level = 1 - CONFIDENCE
    if p < level:
        return f"differs from the baseline (p={p:.3g} < {level:g})"
    return f"no difference shown (p={p:.3g})"
