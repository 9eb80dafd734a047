"""What operators do to a routing table: start a canary, set its weight, pause, resume,
promote, roll back, deprecate, retire, allowlist. Each operation checks the change
against the backends (a version must be listed, and healthy before it takes traffic)
and writes it with a compare-and-set and an audit entry, or refuses it and changes
nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from gateway.backends.endpoints import SERVICES, Backends
from gateway.errors.refusals import FailedPrecondition, InvalidArgument, NotFound
from gateway.errors.validation import validation_message
from gateway.routing.interfaces import RoutingStorage
from gateway.routing.shadow_ops import AgreementSource, require_agreement
from gateway.routing.store import audit_entry
from gateway.routing.table import Guardrails, Rollout, VersionRoute
from switchyard.common.v1 import models_pb2

ATTEMPTS = 5
"""Compare-and-set attempts before giving up on a table that keeps changing."""

Change = Callable[[Rollout | None], Rollout]


class RolloutOps:
    def __init__(
        self, store: RoutingStorage, backends: Backends, agreement: AgreementSource | None = None
    ) -> None:
        self.store = store
        self.backends = backends
        self.agreement = agreement
        """Shadow agreement, for guardrails that want it before a canary starts."""

    def service_of(self, model: str) -> str:
        for service in SERVICES:
            if any(info.name == model for info in self.backends.models(service)):
                return service
        raise NotFound(f"no backend lists a model named {model!r}")

    def _listed(self, model: str) -> models_pb2.ModelInfo:
        service = self.service_of(model)
        return next(m for m in self.backends.models(service) if m.name == model)

    def listed_versions(self, model: str) -> list[str]:
        return [v.version for v in self._listed(model).versions]

    def check_version(self, model: str, version: str, taking_traffic: bool) -> None:
        """404 for a version no backend lists; 409 when it should take traffic and no
        backend hosting it is healthy."""
        if version not in self.listed_versions(model):
            raise NotFound(f"no backend lists {model} {version}")
        if taking_traffic and not self.backends.serving(self.service_of(model), model, version):
            raise FailedPrecondition(f"no healthy backend hosts {model} {version}")

    def default_version(self, model: str) -> str:
        default = next((v.version for v in self._listed(model).versions if v.is_default), None)
        if default is None:
            raise FailedPrecondition(f"{model} lists no default version: name the stable one")
        return default

    async def change(
        self, model: str, actor: str, action: str, reason: str, change: Change
    ) -> Rollout:
        """Apply ``change`` to the stored table (None: the model has none yet) with a
        compare-and-set, reading the table again when another change came first."""
        for _ in range(ATTEMPTS):
            before = await self.store.get(model)
            try:
                after = Rollout.model_validate(change(before).model_dump())
            except ValidationError as error:
                raise InvalidArgument(validation_message(error.errors())) from None
            entry = audit_entry(actor, action, model, reason, before, after)
            if await self.store.change(before, after, entry):
                written = await self.store.get(model)
                assert written is not None
                return written
        raise FailedPrecondition(f"the table of {model} kept changing; try again")

    async def start(
        self,
        model: str,
        canary: str,
        weight: float,
        actor: str,
        reason: str,
        *,
        stable: str | None = None,
        guardrails: Guardrails | None = None,
    ) -> Rollout:
        self.check_version(model, canary, weight > 0)
        if stable is not None:
            self.check_version(model, stable, True)
        default_stable = stable or self.default_version(model)
        if guardrails is not None and guardrails.min_shadow_agreement is not None:
            current = await self.store.get(model)
            base = current.stable.version if current is not None else default_stable
            await require_agreement(self.agreement, model, base, canary, guardrails)
        now = time.time()

        def start(before: Rollout | None) -> Rollout:
            if before is None:
                if default_stable == canary:
                    raise InvalidArgument(f"{canary} would be both stable and canary")
                versions = [VersionRoute(version=default_stable, state="stable")]
            else:
                running = [c for c in before.canaries if c.weight > 0 and c.version != canary]
                if running:
                    raise FailedPrecondition(
                        f"{running[0].version} is already a canary of {model}: promote it or"
                        " roll it back first"
                    )
                if before.stable.version == canary:
                    raise InvalidArgument(f"{canary} is the stable version of {model}")
                versions = [v for v in before.versions if v.version != canary]
            versions.append(VersionRoute(version=canary, state="canary", weight=weight))
            return Rollout(
                model=model,
                # A fresh salt per rollout: the first callers of one canary are not always
                # the first callers of the next.
                salt=secrets.token_hex(8),
                versions=versions,
                allowlist=before.allowlist if before is not None else {},
                guardrails=guardrails,
                paused=False,
                revision=before.revision if before is not None else 0,
                step_started_at=now,
                shadow=before.shadow if before is not None else None,
            )

        return await self.change(model, actor, "start", reason, start)

    async def set_weight(
        self, model: str, weight: float, actor: str, reason: str, version: str | None = None
    ) -> Rollout:
        if not 0 <= weight <= 100:
            raise InvalidArgument(f"weight {weight}: give a percentage from 0 to 100")
        canary = self._canary_of(await self._existing(model), version)
        self.check_version(model, canary, weight > 0)
        now = time.time()

        def weigh(before: Rollout | None) -> Rollout:
            table = self._present(model, before)
            return table.with_weight(canary, weight, step_started_at=now)

        return await self.change(model, actor, "set-weight", reason, weigh)

    async def pause(self, model: str, paused: bool, actor: str, reason: str) -> Rollout:
        await self._existing(model)

        def toggle(before: Rollout | None) -> Rollout:
            table = self._present(model, before)
            update: dict[str, object] = {"paused": paused}
            if not paused:
                update["step_started_at"] = time.time()
            return table.model_copy(update=update)

        return await self.change(model, actor, "pause" if paused else "resume", reason, toggle)

    async def promote(
        self,
        model: str,
        actor: str,
        reason: str,
        version: str | None = None,
        sunset: datetime | None = None,
    ) -> Rollout:
        canary = self._canary_of(await self._existing(model), version)
        self.check_version(model, canary, True)

        def promote(before: Rollout | None) -> Rollout:
            table = self._present(model, before)
            old = table.stable.version
            versions = []
            for v in table.versions:
                if v.version == canary:
                    versions.append(v.model_copy(update={"state": "stable", "weight": 0.0}))
                elif v.version == old:
                    versions.append(VersionRoute(version=old, state="deprecated", sunset=sunset))
                else:
                    versions.append(v)
            # A shadow of the promoted version would now shadow itself: it ends.
            shadow = table.shadow if table.shadow and table.shadow.version != canary else None
            return table.model_copy(
                update={
                    "versions": versions,
                    "paused": False,
                    "step_started_at": None,
                    "shadow": shadow,
                }
            )

        return await self.change(model, actor, "promote", reason, promote)

    async def rollback(
        self, model: str, actor: str, reason: str, version: str | None = None
    ) -> Rollout:
        canary = self._canary_of(await self._existing(model), version)

        def back(before: Rollout | None) -> Rollout:
            table = self._present(model, before)
            # Paused too, so automatic steps do not raise it again.
            return table.with_weight(canary, 0.0, paused=True)

        return await self.change(model, actor, "rollback", reason, back)

    async def set_state(
        self,
        model: str,
        version: str,
        state: str,
        actor: str,
        reason: str,
        sunset: datetime | None = None,
    ) -> Rollout:
        if state not in ("deprecated", "retired"):
            raise InvalidArgument("state: deprecated or retired")
        table = await self._existing(model)
        route = table.route_of(version)
        if route is None:
            self.check_version(model, version, False)
        elif route.state == "stable":
            raise FailedPrecondition(
                f"{version} is the stable version of {model}: promote another first"
            )

        def mark(before: Rollout | None) -> Rollout:
            current = self._present(model, before)
            others = [v for v in current.versions if v.version != version]
            marked = VersionRoute(version=version, state=state, sunset=sunset)
            shadow = current.shadow
            if state == "retired" and shadow is not None and shadow.version == version:
                shadow = None  # a retired version answers nothing, copies included
            return current.model_copy(update={"versions": [*others, marked], "shadow": shadow})

        return await self.change(model, actor, state, reason, mark)

    async def allow(
        self, model: str, caller: str, version: str | None, actor: str, reason: str
    ) -> Rollout:
        """Send ``caller`` (``key:<id>`` or ``jwt:<subject>``) to ``version``; None: remove."""
        if not caller.startswith(("key:", "jwt:")):
            raise InvalidArgument("caller: key:<id> or jwt:<subject>")
        await self._existing(model)
        if version is not None:
            self.check_version(model, version, True)

        def listed(before: Rollout | None) -> Rollout:
            table = self._present(model, before)
            allowlist = dict(table.allowlist)
            if version is None:
                allowlist.pop(caller, None)
            else:
                allowlist[caller] = version
            return table.model_copy(update={"allowlist": allowlist})

        return await self.change(model, actor, "allow" if version else "disallow", reason, listed)

    async def _existing(self, model: str) -> Rollout:
        table = await self.store.get(model)
        if table is None:
            raise NotFound(f"{model} has no routing table: start a rollout first")
        return table

    @staticmethod
    def _present(model: str, table: Rollout | None) -> Rollout:
        if table is None:
            raise NotFound(f"{model} has no routing table")
        return table

    @staticmethod
    def _canary_of(table: Rollout, version: str | None) -> str:
        canaries = [c.version for c in table.canaries]
        if version is not None:
            if version not in canaries:
                raise FailedPrecondition(f"{version} is not a canary of {table.model}")
            return version
        if len(canaries) != 1:
            raise FailedPrecondition(
                f"{table.model} has {len(canaries)} canaries: name the version"
                if canaries
                else f"{table.model} has no canary: start one"
            )
        return canaries[0]
