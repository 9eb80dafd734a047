"""Cutting a padded batch into runs of similar length: every row in exactly one run,
each run as wide as its longest row, the runs' costs close together."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from services.runtime.row_groups import MIN_GROUP_ROWS, length_groups, scatter


def padded(
    lengths: list[int], width: int | None = None, left: bool = False
) -> npt.NDArray[np.int64]:
    width = width or max(lengths)
    rows = [[1] * n + [0] * (width - n) for n in lengths]
    return np.array([row[::-1] if left else row for row in rows], dtype=np.int64)


@pytest.mark.parametrize(
    ("lengths", "threads"),
    [
        ([13, 12, 10, 10] * 4, 2),
        ([5] * 31 + [40], 2),
        (list(range(1, 33)), 2),
        ([7, 9], 2),
        ([7], 2),
        ([3, 8, 8, 2, 30], 3),
        ([12] * 64, 2),
    ],
)
def test_every_row_runs_once_in_a_run_as_wide_as_its_longest_row(
    lengths: list[int], threads: int
) -> None:
    mask = padded(lengths)
    groups = length_groups(mask, len(lengths), mask.shape[1], threads)
    rows = sorted(int(r) for part, _ in groups for r in part)
    assert rows == list(range(len(lengths)))
    for part, extent in groups:
        assert extent == max(lengths[r] for r in part)
    # One run per thread, two once each holds enough rows, never more runs than rows.
    expected = min(len(lengths), max(threads, min(2 * threads, len(lengths) // MIN_GROUP_ROWS)))
    assert len(groups) == expected


def test_runs_hold_rows_of_similar_length_and_costs_close_together() -> None:
    lengths = list(range(1, 33))
    mask = padded(lengths)
    groups = length_groups(mask, 32, 32, 2)
    costs = [len(part) * extent for part, extent in groups]
    whole = 32 * 32
    # Cut to length, the runs compute far less than the padded batch would, and none
    # costs much more than another.
    assert sum(costs) < 0.7 * whole
    assert max(costs) < 1.25 * min(costs)
    # Longest rows first: each run's rows are all at least as long as the next run's.
    for (first, _), (second, _) in itertools.pairwise(groups):
        assert min(lengths[r] for r in first) >= max(lengths[r] for r in second)


def test_rows_padded_on_the_left_keep_the_whole_width() -> None:
    mask = padded([3, 8, 5, 2], width=8, left=True)
    groups = length_groups(mask, 4, 8, 2)
    assert all(extent == 8 for _, extent in groups)


def test_without_a_mask_the_rows_are_split_evenly_at_full_width() -> None:
    groups = length_groups(None, 5, 11, 2)
    assert [list(part) for part, _ in groups] == [[0, 1, 2], [3, 4]]
    assert {extent for _, extent in groups} == {11}


def test_scatter_puts_rows_back_in_order_and_pads_per_token_outputs() -> None:
    mask = padded([2, 4, 1])
    groups = length_groups(mask, 3, 4, 2)
    per_row = [np.array([[float(r)] for r in part], dtype=np.float32) for part, _ in groups]
    assert scatter(groups, per_row, 3, 4).tolist() == [[0.0], [1.0], [2.0]]
    per_token = [np.ones((len(part), extent, 2), dtype=np.float32) for part, extent in groups]
    merged = scatter(groups, per_token, 3, 4)
    assert merged.shape == (3, 4, 2)
    # Rows 0 and 2 (2 and 1 tokens) ran together two tokens wide, row 1 alone four wide;
    # positions beyond a row's run are zeros.
    assert [(part.tolist(), extent) for part, extent in groups] == [([1], 4), ([0, 2], 2)]
    assert merged[:, :, 0].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
