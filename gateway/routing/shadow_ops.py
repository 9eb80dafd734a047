"""What operators do to a model's shadow: start one (or change its share), stop it; and the
floor a canary's start must clear when its guardrails ask for shadow agreement first.

A shadow needs no canary: starting one on a model without a table writes a table whose
only version is the stable one (the version the backends list as default), so routing
stays as it was. Like every other change, it is checked, written with a compare-and-set
and audited (``RolloutOps.change``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors.refusals import FailedPrecondition, InvalidArgument, NotFound
from gateway.routing.table import Guardrails, Rollout, Shadow, VersionRoute

if TYPE_CHECKING:  # for types only: rollout_ops imports this module
    from gateway.routing.rollout_ops import RolloutOps


@dataclass(frozen=True, slots=True)
class ShadowEvidence:
    """What the shadow of a version against a stable one has shown so far."""

    n: int
    """Comparisons counted (one per text)."""
    low: float | None
    """The lower bound of agreement's 95% interval; None with too few comparisons."""


AgreementSource = Callable[[str, str, str], Awaitable[ShadowEvidence]]
"""The evidence of (model, stable version, shadow version), from every replica."""


async def start_shadow(
    ops: RolloutOps, model: str, version: str, share: float, actor: str, reason: str
) -> tuple[Rollout, bool]:
    """Mirror ``share`` percent of stable's requests to ``version``. Returns the table and
    whether the (stable, shadow) pair is new: a new pair's agreement starts from nothing,
    while a new share of the same pair keeps what it counted."""
    if not 0 <= share <= 100:
        raise InvalidArgument(f"share {share}: give a percentage from 0 to 100")
    ops.check_version(model, version, share > 0)
    current = await ops.store.get(model)
    stable = current.stable.version if current is not None else ops.default_version(model)
    if version == stable:
        raise InvalidArgument(f"{version} is the stable version of {model}: shadow another")
    new_pair = True

    def shadow(before: Rollout | None) -> Rollout:
        nonlocal new_pair
        if before is None:
            before = Rollout(
                model=model,
                salt=secrets.token_hex(8),
                versions=[VersionRoute(version=stable, state="stable")],
            )
        if before.stable.version == version:
            raise InvalidArgument(f"{version} is the stable version of {model}: shadow another")
        new_pair = before.shadow is None or before.shadow.version != version
        return before.model_copy(update={"shadow": Shadow(version=version, share=share)})

    return await ops.change(model, actor, "shadow", reason, shadow), new_pair


async def stop_shadow(ops: RolloutOps, model: str, actor: str, reason: str) -> Rollout:
    """Stop mirroring; the agreement counted so far is kept (a canary's start may read it)."""

    def stop(before: Rollout | None) -> Rollout:
        if before is None:
            raise NotFound(f"{model} has no routing table")
        if before.shadow is None:
            raise FailedPrecondition(f"{model} has no shadow version")
        return before.model_copy(update={"shadow": None})

    return await ops.change(model, actor, "shadow-stop", reason, stop)


async def require_agreement(
    source: AgreementSource | None,
    model: str,
    stable: str,
    canary: str,
    guardrails: Guardrails,
) -> None:
    """Refuse a canary whose guardrails set ``min_shadow_agreement`` unless its shadow of
    ``stable`` counted ``min_samples`` comparisons and the lower bound of agreement's 95%
    interval reaches the floor. The lower bound, not the point estimate: few comparisons
    that happened to agree must not pass for many."""
    floor = guardrails.min_shadow_agreement
    if floor is None:
        return
    if source is None:
        raise FailedPrecondition("shadow agreement is not available on this gateway")
    found = await source(model, stable, canary)
    wanted = guardrails.min_samples
    if found.n < wanted or found.low is None:
        raise FailedPrecondition(
            f"{canary} has {found.n} shadow comparisons against {stable}; the guardrails"
            f" want {wanted} before a canary: shadow it first"
        )
    if found.low < floor:
        raise FailedPrecondition(
            f"{canary} agrees with {stable} at {found.low:.1%} at least (lower 95% bound over"
            f" {found.n} comparisons), under the guardrails' floor of {floor:.1%}"
        )
