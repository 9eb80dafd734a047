"""Batch jobs through the gateway's Files and Batches API, driven by the ``openai`` SDK
as users drive it, in front of the real services and a real Redis."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from switchyard.redis_server import LocalRedis
from tests.support import GatewayProcess, ServiceProcess, gateway_process

TEXTS = [
    "I love this, it works perfectly",
    "Terrible, it broke at once",
    "What a wonderful day at the beach",
    "The service was slow and the food was cold",
]
POLL_S = 0.1
WAIT_S = 240.0


@pytest.fixture(scope="module")
def jobs_gateway(
    classifier: ServiceProcess,
    ner: ServiceProcess,
    summarizer: ServiceProcess,
    redis_server: LocalRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    backends = {
        "classifier": classifier.address,
        "ner": ner.address,
        "summarizer": summarizer.address,
    }
    files = tmp_path_factory.mktemp("files")
    with gateway_process(
        backends, redis_url=redis_server.url, files_dir=str(files), jobs_poll_s="0.2"
    ) as process:
        yield process


def sdk(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def classify_lines(count: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}{i}",
            "method": "POST",
            "url": "/v1/classify",
            "body": {"text": TEXTS[i % len(TEXTS)]},
        }
        for i in range(count)
    ]


def wait_for(client: openai.OpenAI, batch_id: str, statuses: set[str]) -> Any:
    """The batch once its status is one of ``statuses`` (polled, as a user polls)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        time.sleep(POLL_S)
    raise AssertionError(f"batch {batch_id} stayed {batch.status}")


def output_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_the_openai_sdk_uploads_creates_polls_and_downloads_every_answer(
    jobs_gateway: GatewayProcess, client_key: str
) -> None:
    client = sdk(jobs_gateway, client_key)
    lines = classify_lines(150)
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/classify",  # type: ignore[arg-type]
        completion_window="24h",
        metadata={"purpose": "test"},
    )
    assert batch.status == "validating" and batch.endpoint == "/v1/classify"
    done = wait_for(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (150, 150)
    assert done.request_counts.failed == 0 and done.error_file_id is None
    answers = output_lines(client, done.output_file_id)
    assert [a["custom_id"] for a in answers] == [line["custom_id"] for line in lines]
    unary = httpx.post(
        f"{jobs_gateway.url}/v1/classify",
        json={"texts": TEXTS},
        headers={"Authorization": f"Bearer {client_key}"},
    ).json()
    expected = [r["labels"][0]["label"] for r in unary["results"]]
    for i, answer in enumerate(answers):
        assert answer["error"] is None
        response = answer["response"]
        assert response["status_code"] == 200 and response["request_id"]
        assert response["body"]["results"][0]["labels"][0]["label"] == expected[i % len(TEXTS)]
        assert answer["id"].startswith("batch_req_")
    assert done.id in [b.id for b in client.batches.list(limit=100).data]
    assert done.metadata == {"purpose": "test"}
