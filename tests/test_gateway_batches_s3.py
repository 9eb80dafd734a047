"""Batch jobs with their files in an S3-compatible object store (moto's server) instead
of a folder: the ``openai`` SDK's upload, batch and download, unchanged."""

from __future__ import annotations

import obstore
import pytest

from switchyard.redis_server import LocalRedis
from tests.batch_support import (
    classify_lines,
    client_key,
    output_lines,
    redis_server,
    sdk,
    submit,
    wait_for,
)
from tests.s3_support import BUCKET, KEY_ID, REGION, SECRET, S3Server, s3_server
from tests.support import ServiceProcess, gateway_process

__all__ = ["client_key", "redis_server", "s3_server"]  # fixtures, used by name

pytestmark = pytest.mark.timeout(300)


def test_a_batch_runs_with_its_files_in_the_object_store(
    classifier: ServiceProcess, redis_server: LocalRedis, client_key: str, s3_server: S3Server
) -> None:
    backends = {"classifier": classifier.address, "ner": "", "summarizer": ""}
    settings = {
        "files_s3_url": f"s3://{BUCKET}/gateway",
        "files_s3_endpoint": s3_server.endpoint,
        "files_s3_region": REGION,
        "files_s3_access_key_id": KEY_ID,
        "files_s3_secret_access_key": SECRET,
        "jobs_poll_s": "0.2",
    }
    with gateway_process(backends, redis_url=redis_server.url, **settings) as gateway:
        client = sdk(gateway, client_key)
        lines = classify_lines(100, prefix="s3-")
        done = wait_for(client, submit(client, lines).id, {"completed", "failed"})
        assert done.status == "completed", done
        answers = output_lines(client, done.output_file_id)
    assert [a["custom_id"] for a in answers] == [line["custom_id"] for line in lines]
    stored = [
        meta["path"] for page in obstore.list(s3_server.bucket(), "gateway/") for meta in page
    ]
    assert f"gateway/files/{done.input_file_id}" in stored
    assert f"gateway/files/{done.output_file_id}" in stored
    assert not [key for key in stored if key.startswith("gateway/parts/")]
