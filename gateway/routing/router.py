"""The routing tables as this replica follows them, and the version each request goes to.

The tables live in the routing store (Redis); every replica keeps the last copy it read
and checks the store's revision every ``routing_follow_s``, reading the tables again
when it moved. While Redis is away the replica keeps routing with its last copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

import redis.asyncio as redis

from gateway.backends.endpoints import Backends
from gateway.edge.metrics import GatewayMetrics
from gateway.errors.refusals import Gone
from gateway.routing.interfaces import RoutingStorage
from gateway.routing.store import RoutingState, audit_entry
from gateway.routing.table import Choice, Rollout, RouteReason, choose

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    model: str
    version: str
    reason: RouteReason = "stable"
    headers: tuple[tuple[str, str], ...] = ()
    """Headers the answer carries for this version (``Deprecation``, ``Sunset``)."""


def load_rollouts_file(path: Path) -> list[Rollout]:
    """Routing tables from a JSON file ``{model: {versions: [...], ...}}``."""
    tables = json.loads(path.read_text())
    return [
        Rollout.model_validate({"salt": model, **table, "model": model})
        for model, table in tables.items()
    ]


class Router:
    def __init__(
        self, store: RoutingStorage, backends: Backends, follow_s: float, metrics: GatewayMetrics
    ) -> None:
        self.store = store
        self.backends = backends
        self.follow_s = follow_s
        self.metrics = metrics
        self.state = RoutingState(-1, {}, [])
        self._follower: asyncio.Task[None] | None = None
        self._store_away = False
        self._applied = asyncio.Event()

    @property
    def revision(self) -> int:
        return self.state.revision

    async def start(self, seed: list[Rollout] | None = None) -> None:
        """Write the seed tables for models that have none, read every table, follow."""
        for rollout in seed or []:
            try:
                if await self.store.get(rollout.model) is None:
                    entry = audit_entry(
                        "settings", "seed", rollout.model, "rollouts file", None, rollout
                    )
                    await self.store.change(None, rollout, entry)
            except (redis.ConnectionError, redis.TimeoutError):
                log.warning("routing store unreachable: table of %s not seeded", rollout.model)
        await self.refresh()
        self._follower = asyncio.create_task(self._follow())

    async def refresh(self, force: bool = False) -> None:
        """Read the tables again if the store's revision moved (or ``force``)."""
        try:
            revision = await self.store.revision()
            if not force and revision == self.state.revision:
                self._store_away = False
                return
            if revision < self.state.revision:
                await self._restore(revision)
            state = await self.store.load()
        except (redis.ConnectionError, redis.TimeoutError):
            if not self._store_away:
                log.warning("routing store unreachable: routing with revision %d", self.revision)
            self._store_away = True
            return
        self._store_away = False
        await self.backends.follow_added([(b.service, b.address) for b in state.backends])
        self.state = state
        self.metrics.routing_revision.set(state.revision)
        # Wake whoever waits for this change, and give later waiters a fresh event.
        self._applied.set()
        self._applied = asyncio.Event()

    async def _restore(self, revision: int) -> None:
        """The store's revision went back: it lost its data (a Redis restarted without
        persistence, say). Write back the tables and added backends this replica routes
        with; of several replicas doing so at once, the compare-and-set lets one write."""
        reason = f"the routing store had lost it (revision {self.state.revision} -> {revision})"
        log.error("routing store went back from revision %d to %d", self.state.revision, revision)
        for rollout in self.state.rollouts.values():
            if await self.store.get(rollout.model) is None:
                entry = audit_entry("gateway", "restore", rollout.model, reason, None, rollout)
                await self.store.change(None, rollout, entry)
        for backend in self.state.backends:
            subject = f"backend {backend.service} {backend.address}"
            entry = audit_entry("gateway", "restore", subject, reason, None, backend.__dict__)
            await self.store.add_backend(backend, entry)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.follow_s)
            try:
                await self.refresh()
            except Exception:  # a bad table must not stop the follower for good
                log.exception("reading the routing tables failed")

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower

    def next_change(self) -> asyncio.Event:
        """An event set when this replica next applies tables it read (its own change or
        one followed from elsewhere). Take it before reading the tables, so that a change
        applied meanwhile is not missed."""
        return self._applied

    def tables(self) -> dict[str, Rollout]:
        return self.state.rollouts

    def rollout(self, model: str) -> Rollout | None:
        return self.state.rollouts.get(model)

    def choose(self, service: str, model: str, identity: str, pinned: str | None) -> Target:
        """The version for one request: pin, allowlist, sticky weight, stable; without a
        routing table, the pin or the default version the backends list."""
        name = self._model_name(service, model)
        rollout = self.state.rollouts.get(name)
        if rollout is None:
            if pinned:
                return Target(name, pinned, "pinned")
            return Target(name, self._listed_default(service, name))
        choice = choose(rollout, identity, pinned)
        if choice.reason == "canary" and not self.backends.serving(service, name, choice.version):
            # A version with no healthy backend takes no share of callers.
            choice = Choice(rollout.stable.version, "stable", rollout.stable)
        route = choice.route
        if route is None:
            return Target(name, choice.version, choice.reason)
        if route.state == "retired":
            raise Gone(f"{name} {route.version} is retired")
        headers: list[tuple[str, str]] = []
        if route.state == "deprecated":
            since = route.deprecated_at
            if since is not None:
                headers.append(("Deprecation", f"@{int(since.timestamp())}"))
            if route.sunset is not None:
                headers.append(("Sunset", format_datetime(route.sunset, usegmt=True)))
        return Target(name, choice.version, choice.reason, tuple(headers))

    def _model_name(self, service: str, model: str) -> str:
        if model:
            return model
        models = self.backends.models(service)
        info = next((m for m in models if m.is_default), models[0] if models else None)
        return info.name if info is not None else ""

    def _listed_default(self, service: str, model: str) -> str:
        info = next((m for m in self.backends.models(service) if m.name == model), None)
        if info is None:
            return ""
        return next((v.version for v in info.versions if v.is_default), "")
