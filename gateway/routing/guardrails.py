"""Every replica judges each canary against its guardrails on the shared live figures:
a breach rolls the canary back (weight 0, paused); a canary within its limits long enough
is raised to its next step. Both go through the routing store's compare-and-set on the
table's revision, so however many replicas judge the same figures, one change is written
and audited, and only the replica that wrote it counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as redis

from gateway.edge.metrics import GatewayMetrics
from gateway.routing.interfaces import RoutingStorage
from gateway.routing.live_figures import VersionFigures
from gateway.routing.live_stats import LiveStats
from gateway.routing.significance import error_rate_test, latency_test
from gateway.routing.store import audit_entry
from gateway.routing.table import Guardrails, Rollout, VersionRoute

log = logging.getLogger(__name__)

TablesSource = Callable[[], dict[str, Rollout]]
"""The routing tables as this replica follows them now."""


@dataclass(frozen=True)
class Verdict:
    breach: str
    """What was breached: "error_rate", "latency" or "" (within the limits)."""
    reason: str
    enough: bool
    """Both versions have the minimum sample count."""


def judge(guardrails: Guardrails, stable: VersionFigures, canary: VersionFigures) -> Verdict:
    """A breach needs a difference past the guardrail's limit (material) that a one-sided
    test finds significant at ``alpha``; the test, its statistic and p-value are in the
    reason, which the audit entry keeps."""
    samples = f"{canary.requests} canary and {stable.requests} stable requests"
    if min(canary.requests, stable.requests) < guardrails.min_samples:
        return Verdict("", f"waiting for {guardrails.min_samples} requests each ({samples})", False)
    alpha = guardrails.alpha
    notes = []
    delta = canary.error_rate - stable.error_rate
    if delta > guardrails.max_error_rate_delta:
        test = error_rate_test(canary.errors, canary.requests, stable.errors, stable.requests)
        told = (
            f"error rate {canary.error_rate:.1%} against stable {stable.error_rate:.1%}"
            f" (at most +{guardrails.max_error_rate_delta:.1%}) over {samples}; {test.describe()}"
        )
        if test.significant(alpha):
            return Verdict("error_rate", told, True)
        notes.append(f"{told}, not significant at {alpha:g}")
    canary_p95, stable_p95 = canary.latency_ms.get("p95"), stable.latency_ms.get("p95")
    if canary_p95 is not None and stable_p95:
        ratio = canary_p95 / stable_p95
        if ratio > guardrails.max_p95_ratio:
            test = latency_test(canary.latency_bins, stable.latency_bins)
            told = (
                f"p95 latency {canary_p95:.1f} ms against stable {stable_p95:.1f} ms"
                f" ({ratio:.2f}x, at most {guardrails.max_p95_ratio:.2f}x) over {samples};"
                f" {test.describe()}"
            )
            if test.significant(alpha):
                return Verdict("latency", told, True)
            notes.append(f"{told}, not significant at {alpha:g}")
    return Verdict("", "; ".join(notes) or f"within limits over {samples}", True)


def judged_since(rollout: Rollout) -> float | None:
    """Where the judged figures start: the canary's last weight change plus the warm-up
    (figures from before, of a rolled-back build or another share, must not judge it)."""
    if rollout.step_started_at is None:
        return None
    warmup = rollout.guardrails.warmup_s if rollout.guardrails is not None else 0.0
    return rollout.step_started_at + warmup


def next_step(guardrails: Guardrails, weight: float) -> float | None:
    return next((s for s in guardrails.steps if s > weight), None)


class GuardrailKeeper:
    def __init__(self, store: RoutingStorage, live: LiveStats, metrics: GatewayMetrics) -> None:
        self.store = store
        self.live = live
        self.metrics = metrics

    async def run(self, interval_s: float, tables: TablesSource) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for rollout in list(tables().values()):
                try:
                    await self.check(rollout)
                except (redis.ConnectionError, redis.TimeoutError):
                    break  # Redis away: judge again on the next round
                except Exception:
                    log.exception("judging the canary of %s failed", rollout.model)

    async def check(self, rollout: Rollout, now: float | None = None) -> str:
        """Judge the rollout's canaries; what was done: "rollback", "step" or ""."""
        guardrails = rollout.guardrails
        live = [c for c in rollout.canaries if c.weight > 0]
        if guardrails is None or not live:
            return ""
        stable = rollout.stable
        versions = [stable.version, *(c.version for c in live)]
        # Only what was counted since the canary's weight was last set (and warmed up).
        # Only randomly assigned requests: a caller who pins the canary must not decide it.
        figures = await self.live.figures(
            rollout.model, versions, since=judged_since(rollout), assigned_only=True
        )
        now = time.time() if now is None else now
        for canary in live:
            verdict = judge(guardrails, figures[stable.version], figures[canary.version])
            if verdict.breach:
                if await self._roll_back(rollout, canary, verdict):
                    return "rollback"
                return ""
            if verdict.enough and not rollout.paused and self._step_due(rollout, now):
                step = next_step(guardrails, canary.weight)
                if step is not None and await self._step(rollout, canary, step, verdict, now):
                    return "step"
        return ""

    @staticmethod
    def _step_due(rollout: Rollout, now: float) -> bool:
        assert rollout.guardrails is not None
        started = rollout.step_started_at
        return started is None or now - started >= rollout.guardrails.step_interval_s

    async def _roll_back(self, rollout: Rollout, canary: VersionRoute, verdict: Verdict) -> bool:
        after = rollout.with_weight(canary.version, 0.0, paused=True)
        entry = audit_entry("guardrail", "rollback", rollout.model, verdict.reason, rollout, after)
        if not await self.store.change(rollout, after, entry):
            return False  # another replica (or an operator) changed the table first
        self.metrics.guardrail_rollbacks.labels(rollout.model, canary.version, verdict.breach).inc()
        log.warning(
            "guardrail rolled back %s %s: %s", rollout.model, canary.version, verdict.reason
        )
        return True

    async def _step(
        self, rollout: Rollout, canary: VersionRoute, step: float, verdict: Verdict, now: float
    ) -> bool:
        after = rollout.with_weight(canary.version, step, step_started_at=now)
        reason = f"{canary.weight:g}% -> {step:g}%: {verdict.reason}"
        entry = audit_entry("guardrail", "step", rollout.model, reason, rollout, after)
        if not await self.store.change(rollout, after, entry):
            return False
        self.metrics.guardrail_steps.labels(rollout.model, canary.version).inc()
        log.info("guardrail raised %s %s to %g%%", rollout.model, canary.version, step)
        return True
