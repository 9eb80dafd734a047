"""A client of the gateway's bulk NDJSON route that sends its body and reads the answer at
the same time, the body's lines made as they are sent, and a sampler of processes' RSS.

httpx (httpcore) writes the whole request body before it reads a byte of the answer, even
when the body is a generator: every answer then waits in the gateway's spill buffer until
the body ends, which is the whole-body case, not streaming. This client writes the body
(chunked) from one task while another reads the answer's chunks and checks each line, so
the gateway's buffer holds only what is in flight. It holds one chunk of body at a time.

RSS is read from ``/proc`` (``statm``), as ``bench.memory`` reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.process_cpu import process_tree
from bench.raw import TEXTS

PATH = "/v1/classify/bulk"
CHUNK_BYTES = 64 * 1024
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def line(number: int, pad: int) -> bytes:
    """One body line, its text one of the bench's texts and ``pad`` more characters."""
    text = TEXTS[number % len(TEXTS)] + " ~" * (pad // 2)
    return json.dumps({"id": number, "text": text}).encode() + b"\n"


def body_chunks(total_bytes: int, pad: int = 0) -> Iterator[tuple[bytes, int]]:
    """Chunks of about ``CHUNK_BYTES`` of whole lines, and the lines in each, until at
    least ``total_bytes`` were given."""
    number = given = 0
    while given < total_bytes:
        lines = []
        size = 0
        while size < CHUNK_BYTES and given + size < total_bytes:
            lines.append(line(number, pad))
            size += len(lines[-1])
            number += 1
        given += size
        yield b"".join(lines), len(lines)


def lines_of(count: int) -> Iterator[tuple[bytes, int]]:
    """``count`` lines of the bench's texts in chunks of 64 lines."""
    for start in range(0, count, 64):
        end = min(count, start + 64)
        yield b"".join(line(n, 0) for n in range(start, end)), end - start


@dataclass(frozen=True)
class BulkResult:
    lines_sent: int
    body_bytes: int
    answered: int
    """Answer lines with labels."""
    failed: int
    """Answer lines without labels (an error line)."""
    seconds: float


async def bulk_request(
    port: int, key: str, chunks: Iterator[tuple[bytes, int]], host: str = "127.0.0.1"
) -> BulkResult:
    """One bulk request over its own connection, body and answer at once."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    sent = {"lines": 0, "bytes": 0}

    async def write() -> None:
        writer.write(
            (
                f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        for chunk, count in chunks:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent["lines"] += count
            sent["bytes"] += len(chunk)
            await writer.drain()  # waits while the gateway does not read
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    sender = asyncio.create_task(write())
    try:
        answered, failed = await _read_answer(reader)
        await sender
    finally:
        if not sender.done():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        writer.close()
    seconds = time.perf_counter() - started
    return BulkResult(sent["lines"], sent["bytes"], answered, failed, seconds)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, int]:
    """The answer's lines with labels and without, once its last chunk arrived."""
    head = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
    if not head[0].startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"bulk answered {head[0].decode()}: {await reader.read(500)!r}")
    if b"transfer-encoding: chunked" not in (h.lower() for h in head):
        raise RuntimeError(f"not a chunked answer: {head!r}")
    answered = failed = 0
    pending = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            break
        *whole, pending = (pending + data[:-2]).split(b"\n")
        for raw in whole:
            if json.loads(raw).get("labels"):
                answered += 1
            else:
                failed += 1
    if pending:
        raise RuntimeError(f"the answer ended within a line: {pending[:200]!r}")
    return answered, failed


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (FileNotFoundError, ProcessLookupError):
        return 0


class RssSampler:
    """Samples the summed RSS of each group of processes every ``interval_s`` in a thread
    and keeps them (MB, 10^6 bytes). A group's processes are the given one and those below
    it at the start (a service's model workers, when it runs them)."""

    def __init__(self, groups: dict[str, int], interval_s: float = 0.05) -> None:
        self.processes = {name: process_tree(pid) for name, pid in groups.items()}
        self.interval_s = interval_s
        self.samples: dict[str, list[float]] = {name: [] for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now_mb(self) -> dict[str, float]:
        return {
            name: sum(rss_bytes(pid) for pid in pids) / 1e6 for name, pids in self.processes.items()
        }

    def peak_mb(self, name: str) -> float:
        return max(self.samples[name])

    def quarters_mb(self, name: str) -> list[float]:
        """The peak in each quarter of the samples (of the request's time): growth that
        goes on quarter after quarter is growth with the body, one that stops is not."""
        samples = self.samples[name]
        bounds = [round(i * len(samples) / 4) for i in range(5)]
        return [max(samples[bounds[i] : max(bounds[i + 1], bounds[i] + 1)]) for i in range(4)]

    def _run(self) -> None:
        while True:
            for name, mib in self.now_mb().items():
                self.samples[name].append(mib)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
