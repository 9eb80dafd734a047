"""Newline-delimited JSON both ways, for the bulk routes: the request's lines cut out of its
chunks as they arrive (a line's length capped without buffering it), the answer's lines
kept in a buffer that spills to a temporary file, and the response that streams them.

The buffer never makes its writer wait: a client that sends its whole body before reading
the answer (as most HTTP clients do) must not stop the body from being read, or neither
side would move. Memory stays flat: past ``memory_bytes`` the lines go to disk.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

NDJSON = "application/x-ndjson"

READ_CHUNK_BYTES = 64 * 1024
"""The most bytes of answer sent in one piece of the response."""


def is_ndjson(content_type: str | None) -> bool:
    """``application/x-ndjson`` (or ``application/jsonl``), any parameters aside."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in (NDJSON, "application/jsonl")


def dumps(value: Any) -> bytes:
    """One answer line, with its newline."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class LineSplitter:
    """Cuts lines (``\\n``, with or without ``\\r``) out of the chunks of a body. Each line
    comes with its 0-based number; blank lines are skipped but numbered. A line longer than
    ``max_bytes`` comes as None, and its bytes are dropped as they arrive."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pending = bytearray()
        self._too_long = False
        self._number = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes | None]]:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._keep(chunk[start:])
                return
            self._keep(chunk[start:end])
            start = end + 1
            yield from self._line()

    def finish(self) -> Iterator[tuple[int, bytes | None]]:
        """The last line, when the body does not end with a newline."""
        if self._pending or self._too_long:
            yield from self._line()

    def _keep(self, part: bytes) -> None:
        if self._too_long:
            return
        if len(self._pending) + len(part) > self.max_bytes:
            self._too_long = True
            self._pending.clear()
            return
        self._pending += part

    def _line(self) -> Iterator[tuple[int, bytes | None]]:
        number, line, too_long = self._number, bytes(self._pending).strip(), self._too_long
        self._number += 1
        self._pending.clear()
        self._too_long = False
        if too_long:
            yield number, None
        elif line:
            yield number, line


class SpillBuffer:
    """A first-in first-out queue of answer bytes: in memory up to ``memory_bytes``, on
    disk past it (``tempfile.SpooledTemporaryFile``). ``put`` never waits."""

    def __init__(self, memory_bytes: int) -> None:
        # Closed by get (at the end) or discard (always, when the answer ends).
        self._file = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115
        self._written = 0
        self._read = 0
        self._closed = False
        self._ready = asyncio.Event()

    def put(self, data: bytes) -> None:
        if self._closed:
            return
        self._file.seek(self._written)
        self._file.write(data)
        self._written += len(data)
        self._ready.set()

    def close(self) -> None:
        """No more lines: the reader gets what is left, then the end."""
        self._closed = True
        self._ready.set()

    async def get(self) -> bytes:
        """The next bytes, waiting for some; empty at the end."""
        while self._read == self._written:
            if self._closed:
                self._file.close()
                return b""
            self._ready.clear()
            await self._ready.wait()
        self._file.seek(self._read)
        data = self._file.read(min(READ_CHUNK_BYTES, self._written - self._read))
        self._read += len(data)
        if self._read == self._written:
            # All read: start over, so a reader that keeps up keeps the file small.
            self._file.seek(0)
            self._file.truncate()
            self._read = self._written = 0
        return data

    def discard(self) -> None:
        self._closed = True
        self._file.close()


class NdjsonStream(Response):
    """Streams a ``SpillBuffer`` as the answer while ``work`` fills it. Unlike Starlette's
    ``StreamingResponse`` it never reads from ``receive`` (which, under ASGI 2.3, would take
    the request body's chunks meant for ``work``). The work is cancelled if the answer
    cannot be sent to the end."""

    media_type = NDJSON

    def __init__(
        self, buffer: SpillBuffer, work: asyncio.Task[None], headers: dict[str, str]
    ) -> None:
        # Not Response.__init__: that one would declare a Content-Length of its empty body.
        self.status_code = 200
        self.background = None
        self.init_headers(headers)
        self.buffer = buffer
        self.work = work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while data := await self.buffer.get():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if not self.work.done():
                self.work.cancel()
            self.buffer.discard()
            # The work's own failures were answered as lines; only a bug is left here.
            await asyncio.gather(self.work, return_exceptions=True)
