"""A batch survives the replica running it: killed mid-batch (SIGKILL, no goodbye), its
lease runs out and another replica goes on from the last checkpoint, every ``custom_id``
answered exactly once. Two real gateway processes share a real Redis and a file folder."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import openai
import pytest

from switchyard.redis_server import LocalRedis
from tests.batch_support import (
    classify_lines,
    client_key,
    jsonl,
    output_lines,
    redis_server,
    wait_for,
)
from tests.support import ServiceProcess, gateway_process

LEASE_S = "2"

__all__ = ["client_key", "redis_server"]  # the module's own Redis, used by name


def test_a_replica_killed_mid_batch_is_taken_over_with_no_duplicate_and_no_gap(
    classifier: ServiceProcess,
    redis_server: LocalRedis,
    client_key: str,
    tmp_path: Path,
) -> None:
    backends = {"classifier": classifier.address, "ner": "", "summarizer": ""}
    shared = {
        "redis_url": redis_server.url,
        "files_dir": str(tmp_path),
        "jobs_lease_s": LEASE_S,
        "jobs_poll_s": "0.2",
    }
    lines = classify_lines(3000, prefix="k")
    with gateway_process(backends, **shared) as first:
        client = openai.OpenAI(base_url=f"{first.url}/v1", api_key=client_key, max_retries=0)
        upload = client.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/classify",  # type: ignore[arg-type]
            completion_window="24h",
        )
        running = wait_for(client, batch.id, {"in_progress", "completed"})
        while running.status == "in_progress" and running.request_counts.completed == 0:
            running = client.batches.retrieve(batch.id)
        assert running.status == "in_progress", "3000 lines ran before the kill"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        with gateway_process(backends, **shared) as second:
            client = openai.OpenAI(base_url=f"{second.url}/v1", api_key=client_key, max_retries=0)
            done = wait_for(client, batch.id, {"completed", "failed"})
            assert done.status == "completed", done
            answers = output_lines(client, done.output_file_id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (3000, 0)
    assert [a["custom_id"] for a in answers] == [line["custom_id"] for line in lines]
    assert all(a["response"]["status_code"] == 200 for a in answers)
    assert len({a["id"] for a in answers}) == 3000


pytestmark = pytest.mark.timeout(300)
