"""How one shadow answer compares with stable's, text by text: pure functions, no I/O.

- classifier: whether the top labels agree, and how far apart the two versions score
  stable's top label;
- NER: the F1 of the shadow's entities against stable's, matched exactly on (start, end,
  label);
- summarizer: ROUGE-L F (the longest common subsequence of whitespace tokens) of the
  shadow's summary against stable's, and the ratio of their lengths in tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

Span = tuple[int, int, str]
"""An entity's start, end and label."""


def label_comparison(
    stable_label: str, stable_score: float, shadow_scores: Mapping[str, float]
) -> tuple[bool, float]:
    """Whether the shadow's top label is stable's, and the absolute difference between
    the two versions' scores of stable's label (a label the shadow did not list scores 0
    there). Ties in the shadow's top score go to the label listed first."""
    top = max(shadow_scores, key=lambda label: shadow_scores[label], default=None)
    return top == stable_label, abs(stable_score - shadow_scores.get(stable_label, 0.0))


def entity_f1(stable: Iterable[Span], shadow: Iterable[Span]) -> float:
    """F1 of the shadow's entities, stable's taken as the reference; two texts with no
    entities at all agree fully."""
    expected, found = Counter(stable), Counter(shadow)
    if not expected and not found:
        return 1.0
    matched = sum((expected & found).values())
    if matched == 0:
        return 0.0
    precision = matched / sum(found.values())
    recall = matched / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """The length of the longest common subsequence (one row of the table at a time)."""
    if len(second) > len(first):
        first, second = second, first
    row = [0] * (len(second) + 1)
    for token in first:
        diagonal = 0
        for j, other in enumerate(second, start=1):
            above = row[j]
            row[j] = diagonal + 1 if token == other else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l(stable: str, shadow: str) -> float:
    """ROUGE-L F1 of the shadow's text against stable's, over whitespace tokens; two
    empty texts agree fully."""
    reference, candidate = stable.split(), shadow.split()
    if not reference and not candidate:
        return 1.0
    common = lcs_length(reference, candidate)
    if common == 0:
        return 0.0
    precision, recall = common / len(candidate), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def length_ratio(stable: str, shadow: str) -> float:
    """The shadow's length over stable's, in whitespace tokens (stable's counted as at
    least one, so that an empty stable answer does not divide by zero)."""
    return len(shadow.split()) / max(1, len(stable.split()))
