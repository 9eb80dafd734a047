"""What happens when a batch ends, beyond its record: the webhook it names
(``metadata.webhook_url``) is sent the batch object, signed, from a background task, so
neither the runner nor the batch's end waits on a slow or failing receiver.

A delivery is made once by the replica that ended the batch; a replica that dies between
saving the end and delivering loses that callback (the batch's status stays readable).
"""

from __future__ import annotations

import asyncio
import logging

from gateway.jobs.records import BatchRecord
from gateway.jobs.webhooks import WebhookPolicy, WebhookRefused, check_url, deliver, event_id

log = logging.getLogger(__name__)

WEBHOOK_KEY = "webhook_url"
"""The metadata key naming a batch's webhook."""


class BatchCallbacks:
    def __init__(self, secret: str | None, policy: WebhookPolicy) -> None:
        self.secret = secret
        self.policy = policy
        self._sending: set[asyncio.Task[None]] = set()

    async def check(self, metadata: dict[str, str] | None) -> None:
        """``WebhookRefused`` for a webhook this gateway will not send (no secret, or a
        URL it may not call)."""
        url = (metadata or {}).get(WEBHOOK_KEY)
        if url is None:
            return
        if self.secret is None:
            raise WebhookRefused("this gateway sends no webhooks (it has no webhook secret)")
        await check_url(url, self.policy)

    async def ended(self, record: BatchRecord) -> None:
        url = (record.metadata or {}).get(WEBHOOK_KEY)
        if url is None or self.secret is None:
            return
        task = asyncio.create_task(self._send(url, record, self.secret))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, url: str, record: BatchRecord, secret: str) -> None:
        outcome = await deliver(
            url,
            record.public(),
            secret=secret,
            webhook_id=event_id(record.id, record.status),
            policy=self.policy,
        )
        if outcome.delivered:
            log.info("batch %s: webhook delivered (%d attempts)", record.id, outcome.attempts)
        else:
            log.warning(
                "batch %s: webhook not delivered after %d attempts: %s",
                record.id,
                outcome.attempts,
                outcome.error or outcome.status,
            )

    async def close(self) -> None:
        for task in self._sending:
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
