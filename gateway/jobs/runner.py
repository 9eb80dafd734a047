"""Every gateway replica runs batches (unless told not to): it claims one whose lease is
free, holds the lease while it runs (renewing it a third of the way through each term),
and gives it back at once when it stops. A replica that dies holds its lease no longer
than a term: another claims the batch then and goes on from its checkpoint.

Jobs run in the gateway rather than in a worker process of their own: their lines go
through the gateway's own routes in process (the same checks, routing and limits, no
extra hop), plain ``switchyard up`` runs them with nothing more to start, and scaling the
gateway scales them. A deployment that wants them apart runs gateway replicas with
``SWITCHYARD_GATEWAY_JOBS_RUN=false`` beside ones that run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket

import redis.asyncio as redis

from gateway.jobs.dispatch import Interrupted
from gateway.jobs.run_batch import BatchRun, JobContext, LostLease

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 3600.0
"""How often result files and parts past their age are removed from the file store."""
STALE_PARTS_S = 7 * 86_400
"""Parts of a batch that nobody finished (its record expired) are removed after this."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class JobRunner:
    def __init__(self, ctx: JobContext, lease_s: float, poll_s: float) -> None:
        self.ctx = ctx
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.worker = worker_name()
        self.wake = asyncio.Event()
        """Set when a batch is created here: look for work now, not at the next poll."""

    async def run(self) -> None:
        sweep = asyncio.create_task(self._sweep())
        try:
            while True:
                try:
                    batch_id = await self.ctx.store.claim(self.worker, self.lease_s)
                    if batch_id is not None:
                        await self._run_one(batch_id)
                        continue
                except (redis.ConnectionError, redis.TimeoutError):
                    pass  # Redis away: look again at the next poll
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_s)
        finally:
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)

    async def _run_one(self, batch_id: str) -> None:
        record = await self.ctx.store.get_batch(batch_id)
        if record is None:
            return
        work = asyncio.create_task(BatchRun(self.ctx, record, self.worker).run())
        keeper = asyncio.create_task(self._keep_lease(batch_id, work))
        try:
            await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                await self._give_back(batch_id)  # this replica is stopping
                raise
            log.warning("batch %s: lease lost; another replica goes on with it", batch_id)
        except LostLease:
            log.warning("batch %s: lease lost; another replica goes on with it", batch_id)
        except (Interrupted, redis.ConnectionError, redis.TimeoutError, OSError) as error:
            log.warning("batch %s paused at its checkpoint: %s", batch_id, error)
            await self._pause_and_give_back(batch_id)
        except Exception:
            log.exception("batch %s failed here; it goes on from its checkpoint", batch_id)
            await self._pause_and_give_back(batch_id)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _pause_and_give_back(self, batch_id: str) -> None:
        # Given back, then a pause before looking for work: another replica may take
        # it meanwhile, and a failure that repeats does not spin.
        await self._give_back(batch_id)
        await asyncio.sleep(self.poll_s)

    async def _keep_lease(self, batch_id: str, work: asyncio.Task[None]) -> None:
        while not work.done():
            await asyncio.sleep(self.lease_s / 3)
            try:
                held = await self.ctx.store.renew(batch_id, self.worker, self.lease_s)
            except (redis.ConnectionError, redis.TimeoutError):
                continue  # the lease may yet hold; the next renewal tells
            if not held:
                work.cancel()
                return

    async def _give_back(self, batch_id: str) -> None:
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
            await self.ctx.store.release(batch_id, self.worker)

    async def _sweep(self) -> None:
        while True:
            try:
                removed = await self.ctx.files.delete_older("files/", self.ctx.files_ttl_s)
                removed += await self.ctx.files.delete_older("parts/", STALE_PARTS_S)
            except OSError:
                log.exception("the file store could not be swept")
            else:
                if removed:
                    log.info("removed %d expired files", removed)
            await asyncio.sleep(SWEEP_EVERY_S)
