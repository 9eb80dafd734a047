"""Summary streams (Server-Sent Events) that outlive their gateway: each is opened on one
gateway; when that gateway ends it (an ``error`` event asking to send the request again,
or a cut connection), the client sends the same request to the other gateway with the
last event id it saw as ``Last-Event-ID``, as a browser's ``EventSource`` does, and reads
on. Each stream's story is told in one outcome string."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import httpx

TEXT = (
    "The city council voted on Tuesday to build protected bike lanes on five avenues next"
    " year, after a long debate about parking, deliveries and the cost of the work."
)


@dataclass
class Stream:
    """One SSE stream as read so far."""

    last_id: str = ""
    tokens: int = 0
    ending: str = ""
    """``done``, ``error <code>``, ``cut`` (no terminal event), or ``204`` (nothing left)."""
    error_retry: bool = False


@dataclass
class StreamRun:
    key: str
    max_new_tokens: int
    first_token: threading.Event = field(default_factory=threading.Event)
    left_first_gateway: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""

    def _read(self, client: httpx.Client, url: str, stream: Stream) -> None:
        headers = {"Last-Event-ID": stream.last_id} if stream.last_id else {}
        body = {"text": TEXT, "max_new_tokens": self.max_new_tokens}
        stream.ending = "cut"
        try:
            with client.stream(
                "POST", f"{url}/v1/summarize/stream", json=body, headers=headers
            ) as reply:
                if reply.status_code == 204:
                    stream.ending = "204"
                    return
                if reply.status_code != 200:
                    stream.ending = f"http {reply.status_code}"
                    return
                event, data = "", ""
                for line in reply.iter_lines():
                    if line.startswith("id:"):
                        stream.last_id = line[3:].strip()
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif line == "" and event:
                        if self._on_event(event, data, stream):
                            return
                        event, data = "", ""
        except httpx.TransportError:
            stream.ending = "cut"

    def _on_event(self, event: str, data: str, stream: Stream) -> bool:
        """Take one event; True when it ends the stream."""
        if event == "token":
            stream.tokens += 1
            self.first_token.set()
            return False
        if event == "done":
            stream.ending = "done"
            return True
        if event == "error":
            error = json.loads(data).get("error", {}) if data else {}
            stream.ending = f"error {error.get('code', '?')}"
            stream.error_retry = bool(error.get("retryable", True))
            return True
        return False

    def run(self, first_url: str, other_url: str) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=120, headers=headers) as client:
            stream = Stream()
            self._read(client, first_url, stream)
            self.left_first_gateway.set()
            first = stream.ending
            if first == "done":
                self.outcome = "completed on its first gateway"
                return
            if not stream.last_id:
                # Refused before it started (the gateway draining): sent again.
                self._read(client, other_url, stream)
                self.outcome = f"{first} before any event, sent to the other: {stream.ending}"
                return
            self._read(client, other_url, stream)
            self.outcome = f"{first} on its gateway, resumed on the other: {stream.ending}"
            if stream.ending != "done":
                # Nothing left to resume (the generation ended with its gateway): the
                # error event said to send the request again, so it is sent anew.
                fresh = Stream()
                self._read(client, other_url, fresh)
                self.outcome += f", sent again: {fresh.ending}"
