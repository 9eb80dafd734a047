"""What the shadow's counters mean, and the agreement figures they add up to.

One hash of counters per (model, stable version, shadow version), summed over every
replica (``gateway.shadow.agreement``):

- ``n`` comparisons (one per text), and per kind of model:
  - ``labels`` (classifier): ``agree`` top labels equal, ``score_diff`` the sum of the
    absolute differences of stable's top label's score;
  - ``entities`` (NER) and ``text`` (summarizer): ``sum`` and ``sumsq`` of the per-text
    score (entity F1, ROUGE-L F), for the mean and its interval; ``ratio`` the sum of the
    summaries' length ratios (text);
- ``calls`` mirrored requests compared, ``stable_ms`` and ``shadow_ms`` the sums of each
  side's backend time, ``s:<bin>`` and ``h:<bin>`` each side's latency histogram bins
  (``LogHistogram``, as the live figures keep them);
- ``failed`` mirrors that failed (an error or their deadline), ``dropped`` mirrors not
  sent because the replica's shadow calls were all busy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from scipy import stats

from gateway.routing.live_figures import HISTOGRAM
from gateway.routing.significance import wilson

Kind = Literal["labels", "entities", "text"]
KIND_OF_SERVICE: dict[str, Kind] = {"classifier": "labels", "ner": "entities", "summarizer": "text"}
CONFIDENCE = 0.95


def latency_fields(stable_s: float, shadow_s: float) -> dict[str, float]:
    """The counters of one compared call's two latencies."""
    return {
        "calls": 1,
        "stable_ms": stable_s * 1000,
        "shadow_ms": shadow_s * 1000,
        f"s:{HISTOGRAM.index_of(stable_s)}": 1,
        f"h:{HISTOGRAM.index_of(shadow_s)}": 1,
    }


def mean_interval(total: float, squares: float, n: int) -> tuple[float | None, float | None]:
    """The 95% t interval of a mean from its sum and sum of squares, clipped to [0, 1]
    (every score kept here lies there); None with fewer than two values."""
    if n < 2:
        return None, None
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * math.sqrt(variance / n)
    return max(0.0, mean - half), min(1.0, mean + half)


def _p95_ms(counts: Mapping[str, float], prefix: str) -> float | None:
    bins = {
        int(field[len(prefix) :]): int(count)
        for field, count in counts.items()
        if field.startswith(prefix)
    }
    found = HISTOGRAM.quantile(bins, 0.95)
    return None if found is None else found * 1000


def agreement_figures(kind: Kind, counts: Mapping[str, float]) -> dict[str, Any]:
    """The agreement of a pair: for labels, the rate of equal top labels with its Wilson
    interval; for entities and text, the mean score with its t interval. Figures with
    nothing counted are None."""
    n = int(counts.get("n", 0))
    value: float | None = None
    low: float | None = None
    high: float | None = None
    found: dict[str, Any] = {"kind": kind, "n": n}
    if kind == "labels":
        agree = int(counts.get("agree", 0))
        if n:
            value = agree / n
            low, high = wilson(agree, n, CONFIDENCE)
        found["mean_score_diff"] = counts.get("score_diff", 0.0) / n if n else None
    else:
        total = counts.get("sum", 0.0)
        value = total / n if n else None
        low, high = mean_interval(total, counts.get("sumsq", 0.0), n)
        if kind == "text":
            found["length_ratio"] = counts.get("ratio", 0.0) / n if n else None
    calls = int(counts.get("calls", 0))
    found |= {
        "value": value,
        "low": low,
        "high": high,
        "calls": calls,
        "stable_latency_ms": counts.get("stable_ms", 0.0) / calls if calls else None,
        "shadow_latency_ms": counts.get("shadow_ms", 0.0) / calls if calls else None,
        "stable_latency_p95_ms": _p95_ms(counts, "s:"),
        "shadow_latency_p95_ms": _p95_ms(counts, "h:"),
        "failed": int(counts.get("failed", 0)),
        "dropped": int(counts.get("dropped", 0)),
    }
    return found
