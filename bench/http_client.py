"""A minimal HTTP/1.1 keep-alive client for the benchmarks: the load generator shares
this machine's two cores with the systems it measures, so it must cost as little per
request as asyncio allows (see ``HttpConnection``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


class HttpConnection:
    """One HTTP/1.1 keep-alive connection, as cheap a client as asyncio allows.

    The load generator shares this machine's two cores with the gateway and the model,
    so its own cost per request distorts the comparison. Measured (this process's CPU
    per POST /v1/classify, closed loop, one gateway, alternating windows): httpx.AsyncClient
    3.2 ms at concurrency 1 and 7 ms at 32 (more than the gateway itself); this client
    0.45 ms and 0.18 ms; the grpc.aio stub of the direct side 1.0 ms and 0.25 ms. (The
    client's figures include GatewayProcess's thread here that parses the access logs.)

    It sends fixed request bytes and reads the status line, the headers and a body of
    Content-Length bytes (or, for SSE, chunks until the last one); any status but 200
    is an error.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def _head(self) -> dict[bytes, bytes]:
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        headers = {}
        for line in lines[1:-2]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if not lines[0].startswith(b"HTTP/1.1 200 "):
            length = int(headers.get(b"content-length", b"0"))
            body = await self.reader.readexactly(length)
            raise RuntimeError(f"{lines[0].decode()}: {body[:500]!r}")
        return headers

    async def request(self, data: bytes) -> bytes:
        """Send one request; the body of its 200 answer."""
        self.writer.write(data)
        headers = await self._head()
        return await self.reader.readexactly(int(headers[b"content-length"]))

    async def exchange(self, data: bytes) -> tuple[dict[bytes, bytes], bytes]:
        """Send one request; the headers (names in lower case) and body of its 200 answer."""
        self.writer.write(data)
        headers = await self._head()
        return headers, await self.reader.readexactly(int(headers[b"content-length"]))

    async def sse(self, data: bytes) -> tuple[float, dict[str, Any]]:
        """Send a request answered by a chunked SSE stream and read it to its end:
        seconds until the first ``token`` event arrived, and the ``done`` event's data."""
        started = time.perf_counter()
        self.writer.write(data)
        headers = await self._head()
        if headers.get(b"transfer-encoding") != b"chunked":
            raise RuntimeError(f"not a chunked stream: {headers!r}")
        first = 0.0
        done: dict[str, Any] | None = None
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                break
            if b"event: error" in chunk:
                raise RuntimeError(f"error event: {chunk!r}")
            if not first and b"event: token" in chunk:
                first = time.perf_counter() - started
            if b"event: done" in chunk:
                data_line = next(x for x in chunk.splitlines() if x.startswith(b"data: "))
                done = json.loads(data_line[len(b"data: ") :])
        if not first or done is None:
            raise RuntimeError("the stream ended without a token or without done")
        return first, done

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class ConnectionPool:
    """Keep-alive connections to one server, one per concurrent caller."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[HttpConnection] = []

    async def refill(self, count: int) -> None:
        """Have ``count`` open idle connections: the server closes those left idle for
        a few seconds (uvicorn's keep-alive timeout), as during a direct window."""
        for connection in [c for c in self.idle if c.reader.at_eof()]:
            self.idle.remove(connection)
            connection.writer.close()
        while len(self.idle) < count:
            self.idle.append(await HttpConnection.open(self.host, self.port))

    async def request(self, data: bytes) -> bytes:
        if self.idle:
            connection = self.idle.pop()
            try:
                body = await connection.request(data)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed this idle connection as the request went out (its
                # keep-alive timeout): send it again on a new one, as HTTP clients do.
                connection.writer.close()
            else:
                self.idle.append(connection)
                return body
        connection = await HttpConnection.open(self.host, self.port)
        body = await connection.request(data)
        self.idle.append(connection)
        return body

    async def close(self) -> None:
        for connection in self.idle:
            await connection.close()
        self.idle.clear()


def post_json(port: int, path: str, body: str, key: str) -> bytes:
    encoded = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(encoded)}\r\n\r\n"
    ).encode() + encoded


def classify_body(text: str) -> str:
    return json.dumps({"text": text})


def server_timing(headers: dict[bytes, bytes]) -> dict[str, float]:
    """The steps of a ``Server-Timing`` header and their milliseconds."""
    steps = {}
    for entry in headers.get(b"server-timing", b"").decode().split(","):
        name, _, params = entry.strip().partition(";")
        for param in params.split(";"):
            field, _, value = param.strip().partition("=")
            if field == "dur":
                steps[name] = float(value)
    return steps
