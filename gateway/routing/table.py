"""A model's routing table, and the choice of a version for one request.

Per request, in order: the caller's pin, the allowlist, the sticky weighted assignment,
the stable version. The sticky assignment hashes the rollout's salt and the caller's
identity with SHA-256 (Python's ``hash()`` is salted per process, so it would move
callers between replicas and restarts) into ``BUCKETS`` buckets. Weighted versions take
the buckets from 0 upwards in table order and the stable version the rest: raising a
canary's weight only widens its range, so it only moves callers from stable to canary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BUCKETS = 10_000
"""Buckets of the sticky assignment: weights resolve to 0.01 %."""

VersionState = Literal["stable", "canary", "deprecated", "retired"]
RouteReason = Literal["pinned", "allowlist", "canary", "stable"]


class VersionRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=64)
    state: VersionState
    weight: float = Field(
        0.0, ge=0, le=100, description="Percent of callers (canary versions only)."
    )
    sunset: datetime | None = Field(
        None, description="When a deprecated version stops answering (the Sunset header)."
    )
    deprecated_at: datetime | None = Field(
        None, description="When the version was deprecated (the Deprecation header)."
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_now(cls, data: Any) -> Any:
        deprecated = isinstance(data, dict) and data.get("state") == "deprecated"
        if deprecated and not data.get("deprecated_at"):
            return {**data, "deprecated_at": datetime.now(UTC).replace(microsecond=0)}
        return data


class Guardrails(BaseModel):
    """Limits a canary must stay within, against the stable version's live figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rate_delta: float = Field(
        0.05, ge=0, le=1, description="Largest canary error rate minus stable error rate."
    )
    max_p95_ratio: float = Field(
        1.5, gt=0, description="Largest canary p95 latency over stable p95 latency."
    )
    min_samples: int = Field(
        50, ge=1, description="Requests each version needs in the window before judging."
    )
    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Significance level: a canary past a limit is rolled back only when a"
        " one-sided test (two-proportion z for errors, Mann-Whitney U for latency) finds it"
        " worse than stable with a p-value below this.",
    )
    warmup_s: float = Field(
        10.0,
        ge=0,
        description="Seconds after each weight change whose requests are not judged: cold"
        " replicas and caches answer the first ones slowly.",
    )
    steps: list[float] = Field(
        default_factory=list,
        description="Weights the canary is raised through while it stays within limits.",
    )
    step_interval_s: float = Field(300.0, gt=0, description="Time spent at each step.")
    min_shadow_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A canary may start only after shadowing the stable version with at"
        " least min_samples comparisons whose agreement's lower 95% bound reaches this.",
    )

    @model_validator(mode="after")
    def _steps_rise_within_0_to_100(self) -> Guardrails:
        if any(not 0 < s <= 100 for s in self.steps):
            raise ValueError("steps must lie in (0, 100]")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps must rise")
        return self


class Shadow(BaseModel):
    """A version that gets a copy of a share of stable's requests and answers no one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=64)
    share: float = Field(ge=0, le=100, description="Percent of stable's requests mirrored.")


class Rollout(BaseModel):
    """Every version of one model that may take traffic, and how traffic is shared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=128)
    salt: str = Field(min_length=1, description="Mixed into the sticky hash of callers.")
    versions: list[VersionRoute]
    allowlist: dict[str, str] = Field(
        default_factory=dict, description="Caller (key:<id> or jwt:<subject>) to version."
    )
    guardrails: Guardrails | None = None
    paused: bool = Field(False, description="Automatic steps wait while paused.")
    revision: int = Field(0, ge=0, description="Raised by one with every change.")
    step_started_at: float | None = Field(
        None, description="When the canary reached its current weight (epoch seconds)."
    )
    shadow: Shadow | None = Field(
        None, description="A version that answers copies of stable's requests, to no one."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Rollout:
        names = [v.version for v in self.versions]
        if len(set(names)) != len(names):
            raise ValueError("a version is listed twice")
        stable = [v for v in self.versions if v.state == "stable"]
        if len(stable) != 1:
            raise ValueError("exactly one version must be stable")
        weighted = [v for v in self.versions if v.state != "canary" and v.weight]
        if weighted:
            raise ValueError(f"only canary versions carry a weight ({weighted[0].version})")
        if sum(v.weight for v in self.versions) > 100:
            raise ValueError("the canary weights add up to more than 100")
        for caller, version in self.allowlist.items():
            route = self.route_of(version)
            if route is None or route.state == "retired":
                raise ValueError(f"the allowlist sends {caller} to {version}, not a live version")
        if self.shadow is not None and self.shadow.version == self.stable.version:
            raise ValueError(f"{self.shadow.version} is the stable version: it cannot shadow")
        return self

    @property
    def stable(self) -> VersionRoute:
        return next(v for v in self.versions if v.state == "stable")

    @property
    def canaries(self) -> list[VersionRoute]:
        return [v for v in self.versions if v.state == "canary"]

    def route_of(self, version: str) -> VersionRoute | None:
        return next((v for v in self.versions if v.version == version), None)

    def with_weight(self, version: str, weight: float, **update: Any) -> Rollout:
        """This table with ``version`` at ``weight`` (and the other fields in ``update``)."""
        versions = [
            v.model_copy(update={"weight": weight}) if v.version == version else v
            for v in self.versions
        ]
        return self.model_copy(update={"versions": versions, **update})


@dataclass(frozen=True, slots=True)
class Choice:
    version: str
    reason: RouteReason
    route: VersionRoute | None
    """The version's entry in the table; None for a pin the table does not list."""


def bucket_of(salt: str, identity: str) -> int:
    """The caller's bucket in [0, BUCKETS): the same on every replica and after restarts."""
    digest = hashlib.sha256(f"{salt}\x00{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def choose(rollout: Rollout, identity: str, pinned: str | None) -> Choice:
    """The version for one request: pin, allowlist, sticky weighted assignment, stable."""
    if pinned:
        return Choice(pinned, "pinned", rollout.route_of(pinned))
    allowed = rollout.allowlist.get(identity)
    if allowed is not None:
        return Choice(allowed, "allowlist", rollout.route_of(allowed))
    bucket = bucket_of(rollout.salt, identity)
    upper = 0
    for canary in rollout.canaries:
        upper += round(canary.weight * BUCKETS / 100)
        if bucket < upper:
            return Choice(canary.version, "canary", canary)
    stable = rollout.stable
    return Choice(stable.version, "stable", stable)
