"""A bounded closed-loop load through the gateway, for fault tests and ``make faults``:
C threads, each classifying a new text as soon as its last call was answered, counting
every answer by kind (``ok``, ``http 503``, ``connect error``...), until stopped.

Every text is new (a counter in it), so no answer comes from the prediction cache: each
call reaches a model replica.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from types import TracebackType

import httpx

OK = "ok"


def outcome(reply: httpx.Response) -> str:
    """``ok``, or the status with the error envelope's code (``http 503 overloaded``):
    a full queue and a service away are different faults."""
    if reply.status_code == 200:
        return OK
    try:
        code = reply.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "no envelope"
    return f"http {reply.status_code} {code}"


class GatewayLoad:
    """``concurrency`` callers of ``POST /v1/classify`` on ``urls`` in turn (several
    gateways share the load), bounded by ``max_calls`` in all."""

    def __init__(
        self,
        urls: list[str],
        key: str,
        concurrency: int = 8,
        max_calls: int = 1_000_000,
        timeout_s: float = 60.0,
    ) -> None:
        self.urls = urls
        self.key = key
        self.concurrency = concurrency
        self.max_calls = max_calls
        self.timeout_s = timeout_s
        self.counts: Counter[str] = Counter()
        self.retry_after_seen = 0
        self.first_messages: dict[str, str] = {}
        """The first answer's message of each kind of failure, with the gateway that gave
        it: what a report needs to tell one 503 from another."""
        """Refusals (503, 429) that carried a Retry-After header."""
        self._numbers = itertools.count()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> GatewayLoad:
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._caller, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)

    def _caller(self, index: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=self.timeout_s, headers=headers) as client:
            for turn in itertools.count(index):
                number = next(self._numbers)
                if self._stop.is_set() or number >= self.max_calls:
                    return
                url = self.urls[turn % len(self.urls)]
                text = f"call {number}: what a lovely, well made thing this is"
                message = ""
                try:
                    reply = client.post(f"{url}/v1/classify", json={"text": text})
                    kind = outcome(reply)
                    hinted = kind != OK and "retry-after" in reply.headers
                    message = reply.text[:300] if kind != OK else ""
                except httpx.ConnectError as error:
                    kind, hinted, message = "connect error", False, str(error)
                except httpx.TransportError as error:
                    kind, hinted = f"transport error ({type(error).__name__})", False
                    message = str(error)
                with self._lock:
                    self.counts[kind] += 1
                    if kind != OK:
                        self.first_messages.setdefault(kind, f"{url}: {message}")
                    self.retry_after_seen += hinted
                    self._lock.notify_all()

    @property
    def sent(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def wait_answers(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` more answers (of any kind) came back."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = sum(self.counts.values()) + count
            return self._lock.wait_for(
                lambda: sum(self.counts.values()) >= target,
                max(0.0, deadline - time.monotonic()),
            )

    def failures(self) -> dict[str, int]:
        """Every answer that was not a success, by kind."""
        return {kind: n for kind, n in self.snapshot().items() if kind != OK}
