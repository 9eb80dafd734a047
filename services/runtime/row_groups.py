"""A batch's rows cut into runs of similar length, to share out among threads; no model
here.

A tokenizer pads every row of a batch to its longest. Run as one piece, a batch of short
and long texts computes the short ones' padding too; cut into runs of similar length,
each run as wide as its own longest row, it computes less, and runs holding about equal
shares of the batch's tokens end close together on threads side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

MIN_GROUP_ROWS = 8
"""Fewest rows worth a run of their own once a batch has more runs than threads: in
tight loops (int8 sentiment, two threads), runs of 1 to 4 rows gave 0.77-0.97 times the
texts per second of two equal halves, runs of 8 rows about as much as one run per thread
(1.05 and 1.03 times at a batch of 32); served at c=32, runs of at least 4 rows rather
than 8 gave 0.945 times the texts per second (6-round A/B): the fixed cost of a run
outweighs the evener finish."""

Group = tuple[npt.NDArray[np.intp], int]
"""The rows of one run (indices into the batch) and how many columns they need."""


def length_groups(
    mask: npt.NDArray[np.int64] | None, rows: int, width: int, threads: int
) -> list[Group]:
    """The rows of a batch ``width`` tokens wide in runs, longest rows first: one run per
    thread, two once each would still hold MIN_GROUP_ROWS rows, never more runs than
    rows; each run as wide as its longest row, and the most costly run (rows times
    width) as cheap as such a cut allows."""
    count = min(rows, max(threads, min(2 * threads, rows // MIN_GROUP_ROWS)))
    if mask is None:  # no padding to tell: equal runs of whole rows
        return [(part, width) for part in np.array_split(np.arange(rows), count)]
    # A row's extent: up to its last attended token (the whole width when padded left).
    extents = width - np.argmax(mask[:, ::-1] != 0, axis=1)
    order = np.argsort(-extents, kind="stable")
    longest_first = [int(e) for e in extents[order]]
    # The least cost per run that ``count`` runs can keep to, found by bisection over
    # whole tokens (a batch has at most a few thousand).
    low, high = longest_first[0], rows * longest_first[0]
    while low < high:
        middle = (low + high) // 2
        if len(_cut(longest_first, middle)) <= count:
            high = middle
        else:
            low = middle + 1
    return [(order[a:b], longest_first[a]) for a, b in _cut(longest_first, low)]


def _cut(longest_first: Sequence[int], cost: int) -> list[tuple[int, int]]:
    """The rows, in order, in runs that each take as many as fit ``cost`` (rows times the
    run's first, widest row), at least one."""
    runs = []
    start = 0
    while start < len(longest_first):
        end = min(len(longest_first), start + max(1, cost // longest_first[start]))
        runs.append((start, end))
        start = end
    return runs


def scatter(
    groups: Sequence[Group],
    results: Sequence[npt.NDArray[np.float32] | None],
    rows: int,
    width: int,
) -> npt.NDArray[np.float32]:
    """The runs' outputs back in the batch's row order. Per-token outputs (rows, tokens,
    labels) are padded back to the batch's width with zeros, at positions that were
    padding."""
    first = results[0]
    if first is None:
        raise ValueError("a run gave no output")
    per_token = first.ndim == 3
    shape = (rows, width, first.shape[2]) if per_token else (rows, *first.shape[1:])
    merged = np.zeros(shape, dtype=np.float32)
    for (rows_of, extent), output in zip(groups, results, strict=True):
        if output is None:
            raise ValueError("a run gave no output")
        if per_token:
            merged[rows_of, :extent] = output
        else:
            merged[rows_of] = output
    return merged
