"""Copies of stable's requests sent to the shadow version, compared, and answered to no one.

Once a route has stable's answer, it hands the request to ``ShadowMirror``, which decides
at once (no I/O) whether to mirror it and, if so, starts a task of its own and returns:

- only requests the router sent to stable by its own choice (reason "stable": not
  pinned, allowlisted or canary), answered by stable, successfully, by a backend call
  (cached answers are not mirrored: stable's latency is known only for a real call, and a
  cached text says nothing new);
- a share of them, drawn per request (not per caller: no caller sees the shadow, so a
  sticky draw would buy nothing);
- at most ``concurrency`` mirrors at once in this replica: past that one is dropped (and
  counted), never queued, so a slow shadow cannot pile up work;
- each with its own deadline (``timeout_s``), at low priority in the service's batcher (as
  a batch job's call), in an empty context: the caller's request record, and so its
  live figures, latency, limits and guardrails, never see the mirror.

Failures (gRPC errors, deadlines, answers that do not fit) are counted, never raised. The
unary routes are mirrored (classify, NER, summarize); streamed summaries are not: their
tokens reach the caller as generated, and a second generation per stream would double
the summarizer's heaviest work.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from grpc import aio

from gateway.backends.endpoints import SERVICES, Backends, Endpoint
from gateway.edge.metrics import GatewayMetrics
from gateway.errors.refusals import ApiError
from gateway.routing.router import Router
from gateway.routing.shadow_ops import ShadowEvidence
from gateway.routing.table import Rollout, Shadow
from gateway.shadow.agreement import ShadowAgreement
from gateway.shadow.compare import entity_f1, label_comparison, length_ratio, rouge_l
from gateway.shadow.figures import KIND_OF_SERVICE, agreement_figures, latency_fields
from gateway.shadow.interfaces import Pair
from switchyard.classifier.v1 import classifier_pb2
from switchyard.client.config import LOW_PRIORITY, PRIORITY_KEY
from switchyard.ner.v1 import ner_pb2
from switchyard.summarizer.v1 import summarizer_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

SHADOW_PRIORITY = (PRIORITY_KEY, LOW_PRIORITY)
"""The metadata a batch job's call carries too: the service batches a copy only when no
interactive item waits."""


@dataclass(frozen=True, slots=True)
class StableCall:
    """A request stable answered, as its route made it: what a mirror repeats."""

    service: str
    model: str
    version: str
    """The version that answered."""
    reason: str
    """Why the router chose it (pinned, allowlist, canary, stable)."""
    request_id: str
    metadata: tuple[tuple[str, str], ...]
    stable_s: float
    """Stable's backend time for the request."""


def shadow_for(rollout: Rollout | None, reason: str, answered: str, draw: float) -> Shadow | None:
    """The shadow a request is mirrored to, if any, for a ``draw`` in [0, 1)."""
    if rollout is None or rollout.shadow is None or reason != "stable":
        return None
    if answered != rollout.stable.version:
        return None
    return rollout.shadow if draw * 100 < rollout.shadow.share else None


class ShadowMirror:
    def __init__(
        self,
        backends: Backends,
        router: Router,
        agreement: ShadowAgreement,
        metrics: GatewayMetrics,
        *,
        timeout_s: float,
        concurrency: int,
    ) -> None:
        self.backends = backends
        self.router = router
        self.agreement = agreement
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._tasks: set[asyncio.Task[None]] = set()

    def classify(
        self,
        call: StableCall,
        texts: Sequence[str],
        stable: Sequence[classifier_pb2.Classification],
    ) -> None:
        """Mirror a classification; all labels are asked of the shadow, so that its score
        of stable's top label is known even where its own top label differs."""

        def ask(endpoint: Endpoint, version: str) -> Awaitable[classifier_pb2.ClassifyResponse]:
            return endpoint.classifier.classify(texts, top_k=0, **self._call_options(call, version))

        def compare(reply: classifier_pb2.ClassifyResponse) -> dict[str, float]:
            counts = {"n": 0.0, "agree": 0.0, "score_diff": 0.0}
            for mine, theirs in zip(stable, reply.results, strict=True):
                if not mine.labels:
                    continue
                scores = {s.label: s.score for s in theirs.labels}
                top = mine.labels[0]
                agree, diff = label_comparison(top.label, top.score, scores)
                counts["n"] += 1
                counts["agree"] += agree
                counts["score_diff"] += diff
            return counts

        self._mirror(call, ask, compare)

    def ner(
        self, call: StableCall, texts: Sequence[str], stable: Sequence[ner_pb2.EntityList]
    ) -> None:
        """Mirror an entity extraction: F1 per text, stable's entities the reference."""

        def ask(endpoint: Endpoint, version: str) -> Awaitable[ner_pb2.ExtractEntitiesResponse]:
            return endpoint.ner.extract_entities(texts, **self._call_options(call, version))

        def compare(reply: ner_pb2.ExtractEntitiesResponse) -> dict[str, float]:
            counts = {"n": 0.0, "sum": 0.0, "sumsq": 0.0}
            for mine, theirs in zip(stable, reply.results, strict=True):
                f1 = entity_f1(
                    ((e.start, e.end, e.label) for e in mine.entities),
                    ((e.start, e.end, e.label) for e in theirs.entities),
                )
                counts["n"] += 1
                counts["sum"] += f1
                counts["sumsq"] += f1 * f1
            return counts

        self._mirror(call, ask, compare)

    def summarize(self, call: StableCall, text: str, options: dict[str, Any], summary: str) -> None:
        """Mirror a summary with the same generation options: ROUGE-L and length ratio."""

        def ask(endpoint: Endpoint, version: str) -> Awaitable[summarizer_pb2.SummarizeResponse]:
            return endpoint.summarizer.summarize(
                text, **options, **self._call_options(call, version)
            )

        def compare(reply: summarizer_pb2.SummarizeResponse) -> dict[str, float]:
            score = rouge_l(summary, reply.summary)
            return {
                "n": 1,
                "sum": score,
                "sumsq": score * score,
                "ratio": length_ratio(summary, reply.summary),
            }

        self._mirror(call, ask, compare)

    def _call_options(self, call: StableCall, version: str) -> dict[str, Any]:
        return {
            "model": call.model,
            "version": version,
            "request_id": call.request_id,
            "timeout_s": self.timeout_s,
            "metadata": (*call.metadata, SHADOW_PRIORITY),
        }

    def _mirror(
        self,
        call: StableCall,
        ask: Callable[[Endpoint, str], Awaitable[T]],
        compare: Callable[[T], dict[str, float]],
    ) -> None:
        shadow = shadow_for(
            self.router.rollout(call.model), call.reason, call.version, random.random()
        )
        if shadow is None:
            return
        pair = (call.model, call.version, shadow.version)
        if len(self._tasks) >= self.concurrency:
            self._count(pair, {"dropped": 1}, "dropped")
            return
        # An empty context: the request's record (its live figures, its backend time) and
        # trace stay the caller's; the mirror carries the trace in its metadata only.
        task = asyncio.create_task(
            self._run(pair, call, ask, compare), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        pair: Pair,
        call: StableCall,
        ask: Callable[[Endpoint, str], Awaitable[T]],
        compare: Callable[[T], dict[str, float]],
    ) -> None:
        started = time.perf_counter()
        try:
            endpoint = self.backends.pick(call.service, call.model, pair[2])
            async with asyncio.timeout(self.timeout_s):
                reply = await ask(endpoint, pair[2])
            shadow_s = time.perf_counter() - started
            counts = compare(reply)
        except (aio.AioRpcError, TimeoutError, ApiError, ValueError) as error:
            # An error, the deadline, no backend, or an answer that does not fit (another
            # number of results): the shadow's fault, counted, told to no caller.
            log.debug("shadow %s %s failed: %s", call.model, pair[2], type(error).__name__)
            self._count(pair, {"failed": 1}, "failed")
            return
        self._count(pair, counts | latency_fields(call.stable_s, shadow_s), "compared")

    def _count(self, pair: Pair, counts: dict[str, float], outcome: str) -> None:
        self.agreement.record(pair, counts)
        self.metrics.shadow_requests.labels(pair[0], pair[2], outcome).inc()

    async def close(self) -> None:
        """Cancel the mirrors still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    def service_of(self, model: str) -> str | None:
        for service in SERVICES:
            if any(info.name == model for info in self.backends.models(service)):
                return service
        return None

    async def evidence(self, model: str, stable: str, shadow: str) -> ShadowEvidence:
        """How far ``shadow`` agreed with ``stable`` (a canary's start may require it)."""
        kind = KIND_OF_SERVICE.get(self.service_of(model) or "", "labels")
        found = agreement_figures(kind, await self.agreement.counts((model, stable, shadow)))
        return ShadowEvidence(found["n"], found["low"])

    async def status(self, rollout: Rollout | None) -> dict[str, Any] | None:
        """The rollout's shadow and its agreement so far, as ``RolloutStatus.shadow``."""
        if rollout is None or rollout.shadow is None:
            return None
        shadow = rollout.shadow
        kind = KIND_OF_SERVICE.get(self.service_of(rollout.model) or "", "labels")
        counts = await self.agreement.counts(
            (rollout.model, rollout.stable.version, shadow.version)
        )
        return {
            "version": shadow.version,
            "share": shadow.share,
            "agreement": agreement_figures(kind, counts),
        }
