"""A model version served from a process of its own.

A forward pass of a small transformer is mostly short Python between short kernels, so
it holds the GIL most of the time; in the gRPC process it and the event loop would take
turns on one core. In its own process (spawned, never forked) the model has the GIL to
itself and the event loop keeps the other core. Texts go in and results come back
pickled, which costs little next to a forward pass.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from services.runtime.model import Loader, Predictor, load_and_warm
from services.runtime.registry import VersionSpec

# The worker process's model, set once by its initializer (one model per worker process);
# the gRPC process never sets it.
_predictor: Predictor[Any, Any] | None = None
# Why the worker's model failed to load, for ready() to raise in the service process: an
# initializer that raises only breaks the pool, and the service would log no more than
# "a process in the process pool was terminated abruptly".
_load_error: str | None = None


def _start(
    loader: Loader[Any, Any], spec: VersionSpec, location: str, torch_threads: int, service: str
) -> None:
    from services.runtime.torch_setup import configure_torch
    from switchyard.logs import configure_logging

    global _predictor, _load_error
    # The service stops its workers itself once accepted work is done; a Ctrl-C sent to
    # the whole process group (or a stray SIGTERM) must not kill them under a drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent()
    configure_logging(f"{service}-worker")
    configure_torch(torch_threads)
    try:
        _predictor = load_and_warm(loader, spec, location)
    except Exception as error:
        _load_error = f"{type(error).__name__}: {error}"


def _exit_with_parent() -> None:
    """End this worker when the service process dies, however it died (even SIGKILL):
    a pool worker otherwise waits on its task queue forever, holding the model."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def ready() -> bool:
    """True once the worker has loaded and warmed its model (run in the worker); raises
    why it could not."""
    if _load_error is not None:
        raise RuntimeError(_load_error)
    return _predictor is not None


def predict_batch(items: Sequence[Any]) -> list[Any]:
    """Run one batch on the worker's model (run in the worker)."""
    if _predictor is None:
        raise RuntimeError("the model worker has no model")
    return list(_predictor.predict_batch(items))


def worker_pool(
    loader: Loader[Any, Any], spec: VersionSpec, location: str, torch_threads: int, service: str
) -> ProcessPoolExecutor:
    """A one-process pool that loads ``spec`` when it starts."""
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(loader, spec, location, torch_threads, service),
    )
