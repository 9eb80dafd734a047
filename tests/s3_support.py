"""An S3-compatible server for tests: moto's, started as a process on a free port, with one
bucket, and the stores that point at it."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from obstore.store import S3Store

from gateway.jobs.s3_files import PART_BYTES, READ_BYTES, S3FileStorage
from switchyard.processes import free_port

BUCKET = "switchyard-files"
REGION = "us-east-1"
KEY_ID = "test"  # moto takes any credentials
SECRET = "test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def storage(
        self, prefix: str, part_bytes: int = PART_BYTES, read_bytes: int = READ_BYTES
    ) -> S3FileStorage:
        return S3FileStorage(
            f"s3://{BUCKET}/{prefix}",
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            part_bytes=part_bytes,
            read_bytes=read_bytes,
        )

    def bucket(self) -> S3Store:
        """The whole bucket, prefixes and all."""
        return S3Store(
            BUCKET,
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            client_options={"allow_http": True},
        )

    def pending_uploads(self, prefix: str) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        reply = httpx.get(
            f"{self.endpoint}/{BUCKET}", params={"uploads": "", "prefix": prefix}, timeout=60
        )
        reply.raise_for_status()
        return [
            el.text or "" for el in ET.fromstring(reply.content).iter() if el.tag.endswith("}Key")
        ]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "server.log"  # a file: a pipe nobody reads fills
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        # moto loads its S3 backend on the first S3 request, which takes seconds on a loaded
        # machine: the bucket's creation doubles as the readiness probe, with room to wait.
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the moto server exited:\n{log.read_text(errors='replace')}")
            try:
                httpx.put(f"{endpoint}/{BUCKET}", timeout=60).raise_for_status()
                break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the moto server did not create the bucket within 120 s")
            time.sleep(0.05)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
