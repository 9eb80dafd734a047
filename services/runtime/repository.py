"""The model versions one service process hosts, their readiness and their batchers."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from services.runtime import model_worker
from services.runtime.batcher import BatchObserver, BatchPolicy, DynamicBatcher
from services.runtime.errors import ModelNotFound, Unavailable
from services.runtime.model import Loader, Predictor, load_and_warm
from services.runtime.registry import ServiceSpec, VersionSpec

# Predictor and Loader are named here too: services import them from this module.
__all__ = [
    "HostedVersion",
    "Loader",
    "ModelRepository",
    "ObserverFactory",
    "Predictor",
    "VersionStatus",
    "WorkerFactory",
]

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


class VersionStatus(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    DRAINING = "draining"


@dataclass
class HostedVersion(Generic[In, Out]):
    """One model version: its registry entry, its status, its batcher and, when it runs in
    a process of its own, that worker."""

    spec: VersionSpec
    is_default: bool
    status: VersionStatus = VersionStatus.LOADING
    batcher: DynamicBatcher[In, Out] | None = field(default=None, repr=False)
    workers: list[ProcessPoolExecutor] = field(default_factory=list, repr=False)

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def version(self) -> str:
        return self.spec.version


ObserverFactory = Callable[[VersionSpec], BatchObserver]
WorkerFactory = Callable[[VersionSpec, str], list[ProcessPoolExecutor]]
"""Starts the model worker processes of a version (its spec and weights location)."""


class ModelRepository(Generic[In, Out]):
    """Resolves (model, version) names to hosted versions and loads them."""

    def __init__(self, service: ServiceSpec, models_dir: Path) -> None:
        self._service = service
        self._models_dir = models_dir
        self._versions: dict[tuple[str, str], HostedVersion[In, Out]] = {}
        self.draining = asyncio.Event()
        """Set when the process starts to drain: open streams stop reading requests."""
        for spec in service.version_specs():
            default = service.models[spec.model].default_version == spec.version
            self._versions[(spec.model, spec.version)] = HostedVersion(spec, default)

    @property
    def default_model(self) -> str:
        return self._service.default_model

    def hosted(self) -> list[HostedVersion[In, Out]]:
        """Every hosted version, in registry order."""
        return list(self._versions.values())

    def resolve(self, model: str, version: str) -> HostedVersion[In, Out]:
        """The version a request asks for; empty names pick the defaults."""
        model = model or self._service.default_model
        if model not in self._service.models:
            known = ", ".join(sorted(self._service.models))
            raise ModelNotFound(f"unknown model {model!r}; this service hosts: {known}")
        version = version or self._service.models[model].default_version
        hosted = self._versions.get((model, version))
        if hosted is None:
            known = ", ".join(sorted(self._service.models[model].versions))
            raise ModelNotFound(
                f"model {model!r} has no version {version!r}; hosted versions: {known}"
            )
        if hosted.status is not VersionStatus.READY or hosted.batcher is None:
            if hosted.status is VersionStatus.FAILED:
                raise Unavailable(
                    f"{model} {version} failed to load on this replica (see its log); another"
                    " version or replica may serve"
                )
            raise Unavailable(f"{model} {version} is {hosted.status.value}; retry shortly")
        return hosted

    async def load_all(
        self,
        loader: Loader[In, Out],
        executor: Executor,
        observers: ObserverFactory,
        workers: WorkerFactory | None = None,
        on_broken: Callable[[HostedVersion[In, Out]], None] | None = None,
    ) -> None:
        """Load and warm every version, then start its batcher. With ``workers``, each
        version runs in a process of its own; otherwise on ``executor``'s thread.

        A version that fails to load is marked FAILED and logged; the others still serve.
        """
        loop = asyncio.get_running_loop()
        for hosted in self._versions.values():
            spec = hosted.spec
            location = spec.weights_location(self._models_dir)
            try:
                if workers is not None:
                    pools = hosted.workers = workers(spec, location)
                    await asyncio.gather(
                        *(loop.run_in_executor(pool, model_worker.ready) for pool in pools)
                    )
                    run_batch: Callable[[Sequence[In]], Sequence[Out]] = model_worker.predict_batch
                    runner: Executor | list[ProcessPoolExecutor] = pools
                else:
                    predictor = await loop.run_in_executor(
                        executor, load_and_warm, loader, spec, location
                    )
                    run_batch, runner = predictor.predict_batch, executor
            except Exception:
                log.exception("loading %s %s from %s failed", spec.model, spec.version, location)
                hosted.status = VersionStatus.FAILED
                for worker in hosted.workers:
                    # Nothing will run on it: its memory goes back now, not at shutdown.
                    await asyncio.to_thread(worker.shutdown, wait=True, cancel_futures=True)
                hosted.workers = []
                continue
            policy = BatchPolicy(
                max_batch_size=spec.max_batch_size,
                max_queue_delay_s=spec.max_queue_delay_ms / 1000.0,
                max_queue_size=spec.max_queue_size,
            )
            batcher = DynamicBatcher(
                run_batch, policy, runner, observers(spec), self._broken_callback(hosted, on_broken)
            )
            batcher.start()
            hosted.batcher = batcher
            hosted.status = VersionStatus.READY
            log.info("model ready", extra={"model": spec.model, "version": spec.version})

    @staticmethod
    def _broken_callback(
        hosted: HostedVersion[In, Out], notify: Callable[[HostedVersion[In, Out]], None] | None
    ) -> Callable[[], None]:
        def broken() -> None:
            log.error("%s %s can no longer run", hosted.model, hosted.version)
            hosted.status = VersionStatus.FAILED
            if notify is not None:
                notify(hosted)

        return broken

    def reject_queued(self, error: Exception) -> int:
        """Fail every queued (not yet running) item of every version with ``error``."""
        return sum(h.batcher.reject_queued(error) for h in self._versions.values() if h.batcher)

    def any_ready(self) -> bool:
        return any(h.status is VersionStatus.READY for h in self._versions.values())

    def start_draining(self) -> None:
        """Run queued work at once instead of waiting for fuller batches, and tell open
        streams to stop reading."""
        self.draining.set()
        for hosted in self._versions.values():
            if hosted.batcher is not None:
                hosted.batcher.flush()

    async def close(self) -> None:
        """Finish every accepted item and stop the batchers."""
        for hosted in self._versions.values():
            if hosted.status is VersionStatus.READY:
                hosted.status = VersionStatus.DRAINING
        await asyncio.gather(
            *(h.batcher.close() for h in self._versions.values() if h.batcher is not None)
        )
        for hosted in self._versions.values():
            for worker in hosted.workers:
                # Off the loop: a worker still loading its model may take a while to stop.
                await asyncio.to_thread(worker.shutdown, wait=True, cancel_futures=True)
