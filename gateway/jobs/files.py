"""Where file contents live: uploaded input files, the parts a running batch writes, and
its output and error files. The records that say who owns a file live with the jobs
(``gateway.jobs.store``); this is only bytes under names.

The local store is a directory: every replica that runs jobs must see the same one (one
machine, or a shared volume). Contents are read and written in chunks, so a file far
larger than memory passes through at constant memory; a file appears under its name only
once it is whole (written aside, then renamed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK_BYTES = 256 * 1024
"""Bytes read or written per step."""


class TooLarge(Exception):
    """The content passed the size it was allowed."""


class FileStorage(Protocol):
    async def write(self, name: str, chunks: AsyncIterable[bytes], limit: int | None = None) -> int:
        """Store the chunks under ``name`` (replacing what was there) and give the size;
        ``TooLarge`` (and nothing stored) once past ``limit`` bytes."""
        ...

    def read(self, name: str) -> AsyncIterator[bytes]:
        """The content in chunks; ``FileNotFoundError`` if there is none."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str) -> None:
        """Remove the content, if any."""
        ...

    async def delete_older(self, prefix: str, age_s: float) -> int:
        """Remove what under ``prefix`` was written over ``age_s`` ago; how many."""
        ...


async def from_bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def lines(storage: FileStorage, name: str) -> AsyncIterator[bytes]:
    """The content's lines (without their line ends), read a chunk at a time."""
    rest = b""
    async for chunk in storage.read(name):
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line.rstrip(b"\r")
    if rest:
        yield rest.rstrip(b"\r")


class LocalFileStorage:
    """Contents as files in a directory (made if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        # Names are made by the gateway (ids, never a caller's text); refuse any other.
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad file name {name!r}")
        return self.root / name

    async def write(self, name: str, chunks: AsyncIterable[bytes], limit: int | None = None) -> int:
        path = self._path(name)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}.{id(chunks)}.part")
        size = 0
        handle = await asyncio.to_thread(aside.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise TooLarge(f"the file is larger than {limit} bytes")
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, aside, path)
        except BaseException:
            handle.close()
            aside.unlink(missing_ok=True)
            raise
        return size

    async def read(self, name: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self._path(name).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread(self._path(name).is_file)

    async def delete(self, name: str) -> None:
        path = self._path(name)
        if name.endswith("/"):
            await asyncio.to_thread(shutil.rmtree, path, True)
        else:
            await asyncio.to_thread(path.unlink, True)

    async def delete_older(self, prefix: str, age_s: float) -> int:
        return await asyncio.to_thread(self._delete_older, self._path(prefix), age_s)

    @staticmethod
    def _delete_older(folder: Path, age_s: float) -> int:
        cutoff = time.time() - age_s
        removed = 0
        for path in folder.rglob("*") if folder.is_dir() else ():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # another replica removed it first
        return removed
