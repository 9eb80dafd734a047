"""File contents in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...), for
replicas that share no volume. Same names and behaviour as ``LocalFileStorage``; a name is
a key under an optional prefix inside the bucket.

The client is obstore: a small, typed binding to the Rust ``object_store`` crate with a
native asyncio API and no Python dependencies, where aioboto3/aiobotocore bring botocore,
aiohttp and untyped responses, and boto3 in threads blocks a thread per transfer.

Writing keeps memory constant. Content up to ``part_bytes`` is sent in one PUT, so an
object appears only whole. Past that it goes as a multipart upload of ``part_bytes``
parts (at most ``UPLOADS`` in flight), and S3 shows the object only once the upload
completes. If the content fails, passes its limit (``TooLarge``) or the write is
cancelled, the upload is aborted and its parts are dropped: nothing is stored. A
process that dies mid-upload leaves parts that only the bucket's lifecycle rule
(AbortIncompleteMultipartUpload) removes; set one.

Reading fetches ``read_bytes`` at a time, each with its own ranged GET pinned to the
object's ETag, and hands them out in ``CHUNK_BYTES`` pieces. A batch reads its input
slowly over its whole run, and short requests outlast that where one long download
would time out. An object replaced mid-read raises ``PreconditionError`` rather than
mixing two contents; a deleted one, ``FileNotFoundError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from gateway.jobs.files import CHUNK_BYTES, TooLarge

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import S3Config

MIN_PART_BYTES = 5 * 1024 * 1024
"""S3 refuses smaller parts (except the last)."""
PART_BYTES = 8 * 1024 * 1024
"""Bytes per part of a multipart upload, and the most a single PUT carries."""
UPLOADS = 2
"""Parts of one write uploaded at once: a write holds at most this many parts plus
the one being filled."""
READ_BYTES = 4 * 1024 * 1024
"""Bytes fetched per ranged GET while reading."""
LIST_PAGE = 1000
"""Keys per listing page (S3's largest)."""


class _Abandoned(Exception):
    """The write failed or was cancelled: the upload is to be aborted."""


def _empty(queue: asyncio.Queue[bytes | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


class S3FileStorage:
    """Contents as objects at ``url``, ``s3://bucket`` or ``s3://bucket/key/prefix``.

    ``endpoint`` names an S3-compatible server (``http://`` is allowed); without it the
    AWS endpoint of ``region`` is used. Credentials and region left ``None`` come from
    the standard AWS environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SESSION_TOKEN``,
    ``AWS_REGION``, ...), a web identity or the instance metadata, as AWS SDKs find them.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_bytes: int = PART_BYTES,
        read_bytes: int = READ_BYTES,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"expected s3://bucket or s3://bucket/prefix, got {url!r}")
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        if read_bytes < 1:
            raise ValueError("read_bytes must be positive")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.part_bytes = part_bytes
        self.read_bytes = read_bytes
        config: S3Config = {}
        if endpoint is not None:
            config["endpoint"] = endpoint
        if region is not None:
            config["region"] = region
        if access_key_id is not None:
            config["access_key_id"] = access_key_id
        if secret_access_key is not None:
            config["secret_access_key"] = secret_access_key
        self._store = S3Store(
            self.bucket,
            prefix=self.prefix or None,
            config=config,
            client_options={"allow_http": (endpoint or "").startswith("http://")},
        )

    @staticmethod
    def _key(name: str) -> str:
        # Names are made by the gateway (ids, never a caller's text); refuse any other.
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad file name {name!r}")
        return name

    async def write(self, name: str, chunks: AsyncIterable[bytes], limit: int | None = None) -> int:
        key = self._key(name)
        source = aiter(chunks)
        head: list[bytes] = []
        size = 0
        async for chunk in source:
            size += len(chunk)
            if limit is not None and size > limit:
                raise TooLarge(f"the file is larger than {limit} bytes")
            head.append(chunk)
            if size > self.part_bytes:
                return await self._upload(key, head, size, source, limit)
        await obstore.put_async(self._store, key, b"".join(head), use_multipart=False)
        return size

    async def _upload(
        self,
        key: str,
        head: list[bytes],
        size: int,
        source: AsyncIterator[bytes],
        limit: int | None,
    ) -> int:
        """A multipart upload of ``head`` then the rest of ``source``. The client library
        pulls the parts from a one-chunk queue that this task fills, so the source is
        read here (where ``TooLarge`` and cancellation happen); on any failure the body
        raises, and the library aborts the upload before it returns."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        failed = False

        async def body() -> AsyncGenerator[bytes, None]:
            while (chunk := await queue.get()) is not None:
                yield chunk
            if failed:
                raise _Abandoned

        stream = body()
        upload = asyncio.ensure_future(
            obstore.put_async(
                self._store,
                key,
                stream,
                use_multipart=True,
                chunk_size=self.part_bytes,
                max_concurrency=UPLOADS,
            )
        )
        # An upload that ends early (its error) frees a hand-over waiting on the queue.
        upload.add_done_callback(lambda _: _empty(queue))

        async def hand(chunk: bytes) -> None:
            await queue.put(chunk)
            if upload.done():
                upload.result()
                raise RuntimeError("the upload ended before its content did")

        try:
            for chunk in head:
                await hand(chunk)
            head.clear()
            async for chunk in source:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise TooLarge(f"the file is larger than {limit} bytes")
                await hand(chunk)
            await queue.put(None)
            await asyncio.shield(upload)
        except BaseException:
            if not upload.done():
                failed = True
                _empty(queue)
                queue.put_nowait(None)
                await asyncio.wait({upload})
                upload.exception()  # ours, raised in the body: retrieved, not logged
            raise
        finally:
            if upload.done():
                await stream.aclose()
        return size

    async def read(self, name: str) -> AsyncIterator[bytes]:
        key = self._key(name)
        meta = await obstore.head_async(self._store, key)
        size = meta["size"]
        start = 0
        while start < size:
            end = min(start + self.read_bytes, size)
            options: GetOptions = {"range": (start, end)}
            if meta["e_tag"]:
                options["if_match"] = meta["e_tag"]
            result = await obstore.get_async(self._store, key, options=options)
            window = memoryview(await result.bytes_async())
            for offset in range(0, len(window), CHUNK_BYTES):
                yield bytes(window[offset : offset + CHUNK_BYTES])
            start = end

    async def exists(self, name: str) -> bool:
        try:
            await obstore.head_async(self._store, self._key(name))
        except FileNotFoundError:
            return False
        return True

    async def delete(self, name: str) -> None:
        if name.endswith("/"):
            await self._delete_listed(name, None)
            return
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, self._key(name))

    async def delete_older(self, prefix: str, age_s: float) -> int:
        return await self._delete_listed(prefix, time.time() - age_s)

    async def _delete_listed(self, prefix: str, cutoff: float | None) -> int:
        """Remove what is under ``prefix`` (last modified before ``cutoff``, when given),
        a listing page at a time; how many."""
        folder = self._key(prefix).rstrip("/") if prefix else None
        removed = 0
        async for page in obstore.list(self._store, folder, chunk_size=LIST_PAGE):
            doomed = [
                meta["path"]
                for meta in page
                if cutoff is None or meta["last_modified"].timestamp() < cutoff
            ]
            if doomed:  # (one another replica removed first counts here too)
                await obstore.delete_async(self._store, doomed)
                removed += len(doomed)
        return removed
