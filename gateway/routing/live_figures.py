"""What the live figures' counters mean, and the figures they add up to.

A version's counters, summed over every replica (``gateway.routing.live_stats``), are
named briefly because every request writes some:

- ``n`` requests, ``e`` errors (``ok=False``), ``c:<code>`` errors by code
- ``l:<bin>`` and ``t:<bin>`` latency and time-to-first-token bins of ``LogHistogram``
- ``y:<label>`` classifier labels answered (y as in the predicted label)

A request the gateway did not assign at random (a pinned or allowlisted version) is
counted under the same names with a ``p`` in front (``pn``, ``pe``, ``pl:<bin>``...):
operators see all of a version's traffic, and guardrails judge only the assigned share
(``assigned_only``), so a caller who pins a version cannot decide its comparison.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

PINNED = "p"
"""Prefix of the counters of requests whose version the caller chose (pin, allowlist)."""


class LogHistogram:
    """Bins that grow by a fixed factor, identical in every replica so their counts add up.

    Bin 0 holds everything below ``smallest_s`` (negative durations and NaN included), bin
    ``i`` in ``1..k`` holds ``[smallest_s * growth**(i-1), smallest_s * growth**i)``, and the
    last bin (``overflow``) everything from ``smallest_s * growth**k >= largest_s`` up.

    A quantile reads as the geometric middle of the bin that holds it, which is within a
    factor ``sqrt(growth)`` of any value in that bin: a relative error of at most
    ``relative_error`` (4.9% with growth 1.1) for values in the log-spaced range. Below
    ``smallest_s`` it reads ``smallest_s / 2`` (0.05 ms off at most); in the overflow bin it
    reads the bin's lower edge, a lower bound.

    Changing the layout changes what the stored bin numbers mean: replicas with different
    layouts must not share a key prefix.
    """

    # prometheus_client's Histogram keeps cumulative totals in one process's memory, with no
    # way to add several processes' windows together through Redis; these bins (the layout
    # of a DDSketch with fixed bounds) are plain counters that HINCRBY sums across replicas.

    def __init__(
        self, smallest_s: float = 1e-4, largest_s: float = 600.0, growth: float = 1.1
    ) -> None:
        if not 0 < smallest_s < largest_s or not growth > 1:
            raise ValueError("need 0 < smallest_s < largest_s and growth > 1")
        self.smallest_s = smallest_s
        self.growth = growth
        self._log_growth = math.log(growth)
        self._top_bin = math.ceil(math.log(largest_s / smallest_s) / self._log_growth)
        self._top_s = smallest_s * growth**self._top_bin
        self.overflow = self._top_bin + 1
        self.bins = self.overflow + 1

    @property
    def relative_error(self) -> float:
        return math.sqrt(self.growth) - 1

    def index_of(self, seconds: float) -> int:
        if not seconds >= self.smallest_s:
            return 0
        if seconds >= self._top_s:
            return self.overflow
        # min(): rounding in log() must not push a value just below the top into overflow.
        return min(int(math.log(seconds / self.smallest_s) / self._log_growth) + 1, self._top_bin)

    def middle(self, index: int) -> float:
        """The value (seconds) that stands for every value in bin ``index``."""
        if index <= 0:
            return self.smallest_s / 2
        if index >= self.overflow:
            return self._top_s
        return float(self.smallest_s * self.growth ** (index - 0.5))

    def quantile(self, counts: Mapping[int, int], q: float) -> float | None:
        """The ``q`` quantile (seconds) of the values counted per bin; None when none are.

        The bin whose cumulative count first reaches ``q * n`` (the nearest-rank quantile).
        """
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q}")
        total = sum(counts.values())
        if total <= 0:
            return None
        # The epsilon keeps 0.95 * 1000 from ranking 951 through float rounding.
        rank = max(1, math.ceil(q * total - 1e-9))
        seen = 0
        for index in sorted(counts):
            seen += counts[index]
            if seen >= rank:
                return self.middle(index)
        return self.middle(max(counts))


HISTOGRAM = LogHistogram()
LATENCY_FIELDS = tuple(f"l:{i}" for i in range(HISTOGRAM.bins))
TTFT_FIELDS = tuple(f"t:{i}" for i in range(HISTOGRAM.bins))


@dataclass(frozen=True)
class VersionFigures:
    """One version's figures over the window, summed over every replica."""

    version: str
    window_s: int
    requests: int
    errors: int  # requests with ok=False
    errors_by_code: dict[str, int]  # e.g. {"503": 3, "504": 1}
    error_rate: float  # errors / requests, 0.0 when there were no requests
    latency_ms: dict[str, float | None]  # {"p50", "p95", "p99"}; None when no samples
    ttft_ms: dict[str, float | None]  # time to first token (streams), same keys
    labels: dict[str, float]  # label -> share of labelled answers (sums to 1), {} when none
    pinned: int = 0  # of ``requests``, those pinned or allowlisted (not assigned at random)
    latency_bins: dict[int, int] = field(default_factory=dict)
    """The latency histogram itself (bin -> count), which the guardrails' test reads."""

    def public(self) -> dict[str, object]:
        shown = asdict(self)
        del shown["latency_bins"]
        return shown


def _quantiles_ms(bins: Mapping[int, int]) -> dict[str, float | None]:
    found = {name: HISTOGRAM.quantile(bins, q) for name, q in QUANTILES.items()}
    return {name: None if s is None else s * 1000 for name, s in found.items()}


def figures_of(
    version: str, window_s: int, counts: Mapping[str, int], assigned_only: bool = False
) -> VersionFigures:
    """The figures that one version's summed counters describe: of all its requests, or
    (``assigned_only``) of those the gateway assigned at random, leaving pins out."""
    by_code: dict[str, int] = defaultdict(int)
    latency: dict[int, int] = defaultdict(int)
    ttft: dict[int, int] = defaultdict(int)
    labels: dict[str, int] = defaultdict(int)
    requests = errors = 0
    for counter, count in counts.items():
        if counter.startswith(PINNED):
            if assigned_only:
                continue
            counter = counter[len(PINNED) :]
        kind, _, name = counter.partition(":")
        if kind == "n":
            requests += count
        elif kind == "e":
            errors += count
        elif kind == "c":
            by_code[name] += count
        elif kind == "l":
            latency[int(name)] += count
        elif kind == "t":
            ttft[int(name)] += count
        elif kind == "y":
            labels[name] += count
    labelled = sum(labels.values())
    return VersionFigures(
        version=version,
        window_s=window_s,
        requests=requests,
        errors=errors,
        errors_by_code=dict(sorted(by_code.items())),
        error_rate=errors / requests if requests else 0.0,
        latency_ms=_quantiles_ms(latency),
        ttft_ms=_quantiles_ms(ttft),
        labels={k: c / labelled for k, c in sorted(labels.items())} if labelled else {},
        pinned=0 if assigned_only else counts.get(PINNED + "n", 0),
        latency_bins=dict(latency),
    )
