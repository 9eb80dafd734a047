"""The guardrails' significance tests on fixed samples whose answers are worked out by
hand, and the judge that needs a difference both material and significant."""

from __future__ import annotations

import math

import pytest

from gateway.routing.guardrails import judge, judged_since
from gateway.routing.live_figures import HISTOGRAM, VersionFigures
from gateway.routing.significance import error_rate_test, latency_test
from gateway.routing.table import Guardrails, Rollout, VersionRoute


def test_the_two_proportion_test_of_30_in_100_against_10_in_100() -> None:
    # Pooled rate 0.2; standard error sqrt(0.2 * 0.8 * (1/100 + 1/100)) = 0.05657;
    # z = (0.3 - 0.1) / 0.05657 = 3.5355; one-sided p = 1 - Phi(3.5355) = 2.035e-4.
    result = error_rate_test(30, 100, 10, 100)
    assert result.statistic == pytest.approx(3.5355, abs=1e-4)
    assert result.p_value == pytest.approx(2.035e-4, rel=1e-3)
    assert error_rate_test(10, 100, 30, 100).p_value > 0.99, "one-sided: better is not worse"
    assert error_rate_test(0, 50, 0, 50).p_value == 1.0, "no errors: nothing to test"


def test_mann_whitney_of_three_above_two() -> None:
    # Every canary value above every stable one: U = 3 * 2 = 6; mean 3, variance
    # 3 * 2 * 6 / 12 = 3; with the continuity correction z = (6 - 3 - 0.5) / sqrt(3)
    # = 1.4434, one-sided p = 0.07446 (too few values to tell).
    result = latency_test({3: 1, 4: 1, 5: 1}, {1: 1, 2: 1})
    assert result.statistic == 6.0
    assert result.p_value == pytest.approx(0.07446, rel=1e-3)


def test_mann_whitney_counts_the_ties_of_a_histogram_bin() -> None:
    # 38 values tie in bin 10: the tie-corrected variance is
    # 400 / 12 * (41 - (38**3 - 38 + 2**3 - 2) / (40 * 39)) = 194.87;
    # U = 18 * 20 / 2 + 2 * 20 = 220, z = (220 - 200 - 0.5) / 13.96 = 1.397, p = 0.0812.
    result = latency_test({10: 18, 40: 2}, {10: 20})
    variance = 400 / 12 * (41 - (38**3 - 38 + 2**3 - 2) / (40 * 39))
    assert result.statistic == 220.0
    expected_z = (220 - 200 - 0.5) / math.sqrt(variance)
    assert result.p_value == pytest.approx(0.5 * math.erfc(expected_z / math.sqrt(2)), rel=1e-6)


def figures(requests: int, errors: int, bins: dict[int, int]) -> VersionFigures:
    p95 = HISTOGRAM.quantile(bins, 0.95)
    return VersionFigures(
        version="v",
        window_s=60,
        requests=requests,
        errors=errors,
        errors_by_code={},
        error_rate=errors / requests,
        latency_ms={"p50": None, "p95": None if p95 is None else p95 * 1000, "p99": None},
        ttft_ms={},
        labels={},
        latency_bins=bins,
    )


GUARDRAILS = Guardrails(min_samples=20, max_error_rate_delta=0.05, max_p95_ratio=1.5)


def test_a_material_error_rate_needs_enough_samples_to_be_a_breach() -> None:
    fast = {10: 20}
    few = judge(GUARDRAILS, figures(20, 0, fast), figures(20, 2, fast))  # 10% vs 0%, p=0.073
    assert few.breach == "" and "not significant at 0.05" in few.reason
    fast = {10: 200}
    many = judge(GUARDRAILS, figures(200, 0, fast), figures(200, 20, fast))  # p=2.2e-6
    assert many.breach == "error_rate" and "two-proportion z 4.59, p=2.23e-06" in many.reason


def test_a_slow_tail_that_may_be_chance_is_not_a_breach_but_a_slow_canary_is() -> None:
    stable = figures(20, 0, {10: 20})
    outliers = judge(GUARDRAILS, stable, figures(20, 0, {10: 18, 40: 2}))  # p95 far off
    assert outliers.breach == "" and "Mann-Whitney U 220, p=0.0812" in outliers.reason
    slow = judge(GUARDRAILS, stable, figures(20, 0, {30: 20}))
    assert slow.breach == "latency" and "Mann-Whitney U 400" in slow.reason


def test_the_first_seconds_after_a_weight_change_are_not_judged() -> None:
    rollout = Rollout(
        model="m",
        salt="s",
        versions=[
            VersionRoute(version="v1", state="stable"),
            VersionRoute(version="v2", state="canary", weight=5),
        ],
        guardrails=Guardrails(warmup_s=12.0),
        step_started_at=1000.0,
    )
    assert judged_since(rollout) == 1012.0
    assert judged_since(rollout.model_copy(update={"step_started_at": None})) is None
