"""The S3 file store against a real S3 HTTP server: moto's, started as a process on a free
port for this module. Each test keeps to its own key prefix in one bucket."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import obstore
import pytest

from gateway.jobs.files import CHUNK_BYTES, TooLarge, from_bytes, lines
from gateway.jobs.s3_files import MIN_PART_BYTES, S3FileStorage
from tests.s3_support import S3Server, s3_server

__all__ = ["s3_server"]  # the fixture, used by name

pytestmark = pytest.mark.timeout(120)


def pattern(size: int, seed: int = 0) -> Iterator[bytes]:
    """``size`` bytes in uneven chunks, each of its own content: a chunk lost, repeated
    or moved changes the digest."""
    made = 0
    counter = seed
    while made < size:
        block = hashlib.sha256(counter.to_bytes(8, "big")).digest() * 4096  # 128 KiB
        step = min(len(block) - counter % 777, size - made)
        counter += 1
        made += step
        yield block[:step]


async def chunks_of(parts: Iterator[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(storage: S3FileStorage, name: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read(name)])


async def keys(server: S3Server, prefix: str) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    async for page in obstore.list(server.bucket(), prefix):
        found.update((meta["path"], meta["last_modified"]) for meta in page)
    return found


async def test_a_file_larger_than_a_part_streams_through_whole(s3_server: S3Server) -> None:
    storage = s3_server.storage("round-trip/inner", part_bytes=MIN_PART_BYTES)
    size = 12 * 1024 * 1024 + 12345  # three parts, the last one short
    expected = hashlib.sha256(b"".join(pattern(size))).hexdigest()

    assert await storage.write("files/big", chunks_of(pattern(size))) == size

    digest = hashlib.sha256()
    pieces = 0
    async for chunk in storage.read("files/big"):
        assert 0 < len(chunk) <= CHUNK_BYTES
        digest.update(chunk)
        pieces += 1
    assert digest.hexdigest() == expected
    assert pieces >= size // CHUNK_BYTES
    assert list(await keys(s3_server, "round-trip")) == ["round-trip/inner/files/big"]
    assert s3_server.pending_uploads("round-trip/") == []


async def test_small_and_empty_files_and_lines(s3_server: S3Server) -> None:
    storage = s3_server.storage("small")
    assert await storage.write("files/empty", from_bytes(b"")) == 0
    assert await read_all(storage, "files/empty") == b""
    assert await storage.exists("files/empty")

    text = b'{"a": 1}\r\n\n{"b": 2}'
    assert await storage.write("files/lines", chunks_of(iter([text[:5], text[5:]]))) == len(text)
    assert [line async for line in lines(storage, "files/lines")] == [b'{"a": 1}', b"", b'{"b": 2}']

    # Writing again replaces the content.
    await storage.write("files/lines", from_bytes(b"new"))
    assert await read_all(storage, "files/lines") == b"new"


async def test_a_write_can_copy_from_a_read(s3_server: S3Server) -> None:
    storage = s3_server.storage("copy", part_bytes=MIN_PART_BYTES, read_bytes=1024 * 1024)
    data = b"".join(pattern(7 * 1024 * 1024, seed=3))
    await storage.write("a", from_bytes(data))
    assert await storage.write("b", storage.read("a")) == len(data)
    assert await read_all(storage, "b") == data


@pytest.mark.parametrize("size", [1000, 9 * 1024 * 1024], ids=["one-put", "multipart"])
async def test_too_large_stores_nothing(s3_server: S3Server, size: int) -> None:
    prefix = f"too-large-{size}"
    storage = s3_server.storage(prefix, part_bytes=MIN_PART_BYTES)
    await storage.write("files/kept", from_bytes(b"old content"))

    with pytest.raises(TooLarge):
        await storage.write("files/kept", chunks_of(pattern(size)), limit=size - 1)
    with pytest.raises(TooLarge):
        await storage.write("files/new", chunks_of(pattern(size)), limit=size - 1)

    assert await read_all(storage, "files/kept") == b"old content"
    assert not await storage.exists("files/new")
    assert list(await keys(s3_server, prefix)) == [f"{prefix}/files/kept"]
    assert s3_server.pending_uploads(f"{prefix}/") == []
    # At the limit exactly it is stored.
    assert await storage.write("files/new", chunks_of(pattern(size)), limit=size) == size


async def test_a_failing_or_cancelled_write_stores_nothing(s3_server: S3Server) -> None:
    storage = s3_server.storage("failing", part_bytes=MIN_PART_BYTES)

    async def broken() -> AsyncIterator[bytes]:
        for chunk in pattern(11 * 1024 * 1024):
            yield chunk
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await storage.write("files/broken", broken())

    past_a_part = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        for chunk in pattern(6 * 1024 * 1024):
            yield chunk
        past_a_part.set()
        await asyncio.Event().wait()  # never ends: only cancellation stops it
        yield b""

    writing = asyncio.create_task(storage.write("files/stalled", stalled()))
    await past_a_part.wait()
    # Cancel once the upload has begun on the server (polled: nothing signals it here).
    for _ in range(2000):
        if s3_server.pending_uploads("failing/"):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the multipart upload never began")
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing

    assert await keys(s3_server, "failing") == {}
    assert s3_server.pending_uploads("failing/") == []


async def test_a_missing_file_is_not_found(s3_server: S3Server) -> None:
    storage = s3_server.storage("missing")
    assert not await storage.exists("files/none")
    with pytest.raises(FileNotFoundError):
        await read_all(storage, "files/none")
    await storage.delete("files/none")  # nothing to remove is fine
    with pytest.raises(ValueError, match="bad file name"):
        await storage.exists("../escape")


async def test_a_folder_name_deletes_what_is_under_it(s3_server: S3Server) -> None:
    storage = s3_server.storage("folders/inner")
    names = ["parts/b1/0.out", "parts/b1/0.err", "parts/b1/x/1.out", "parts/b10/0.out", "parts/b1"]
    for name in names:
        await storage.write(name, from_bytes(name.encode()))
    outside = s3_server.bucket()
    await obstore.put_async(outside, "folders/parts/b1/0.out", b"another prefix")

    await storage.delete("parts/b1/")

    assert sorted(await keys(s3_server, "folders")) == [
        "folders/inner/parts/b1",
        "folders/inner/parts/b10/0.out",
        "folders/parts/b1/0.out",
    ]
    await storage.delete("parts/b1")
    assert not await storage.exists("parts/b1")
    assert await storage.exists("parts/b10/0.out")


async def test_delete_older_removes_only_what_is_old_enough(s3_server: S3Server) -> None:
    storage = s3_server.storage("aging")
    old = ["files/a", "files/sub/b"]
    for name in old:
        await storage.write(name, from_bytes(b"old"))
    await storage.write("parts/p", from_bytes(b"old, elsewhere"))
    written = await keys(s3_server, "aging")
    newest_old = max(written.values())

    # The server keeps whole seconds: rewrite the new file until its time is later.
    while True:
        await storage.write("files/new", from_bytes(b"new"))
        new_time = (await obstore.head_async(s3_server.bucket(), "aging/files/new"))[
            "last_modified"
        ]
        if new_time > newest_old:
            break
        await asyncio.sleep(0.05)

    between = (newest_old.timestamp() + new_time.timestamp()) / 2
    assert await storage.delete_older("files/", age_s=time.time() - between) == len(old)
    assert sorted(await keys(s3_server, "aging")) == ["aging/files/new", "aging/parts/p"]

    assert await storage.delete_older("files/", age_s=3600) == 0
    assert await storage.delete_older("files/", age_s=-3600) == 1
    assert sorted(await keys(s3_server, "aging")) == ["aging/parts/p"]


def test_where_the_store_is_comes_from_a_url() -> None:
    storage = S3FileStorage("s3://bucket/some/prefix/", endpoint="http://127.0.0.1:1")
    assert (storage.bucket, storage.prefix) == ("bucket", "some/prefix")
    assert S3FileStorage("s3://bucket").prefix == ""
    for wrong in ("https://bucket/prefix", "s3:///prefix", "s3://bucket/p?x=1"):
        with pytest.raises(ValueError, match="expected s3://"):
            S3FileStorage(wrong)
    with pytest.raises(ValueError, match="part_bytes"):
        S3FileStorage("s3://bucket", part_bytes=1024)
