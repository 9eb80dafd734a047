"""What the batch-job tests share: the SDK pointed at a gateway, input files made of
request lines, a batch submitted, waited on and its answers read, as users do with the
``openai`` SDK."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from switchyard.redis_server import LocalRedis, local_redis
from tests.conftest import make_key
from tests.support import GatewayProcess

TEXTS = [
    "I love this, it works perfectly",
    "Terrible, it broke at once",
    "What a wonderful day at the beach",
    "The service was slow and the food was cold",
]
POLL_S = 0.1
WAIT_S = 240.0


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


def submit(
    client: openai.OpenAI,
    lines: list[dict[str, Any]] | bytes,
    endpoint: str = "/v1/classify",
    metadata: dict[str, str] | None = None,
) -> Any:
    """A batch created from the lines (or the raw file)."""
    data = lines if isinstance(lines, bytes) else jsonl(lines)
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        metadata=metadata,
    )


def output_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


# Every gateway runs the batches of the Redis it is given: a module that runs batches has a
# Redis of its own, so that no other gateway of the session (with another file folder)
# claims them. A module imports these two to replace the session's.


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """A Redis of this module's own."""
    with local_redis(tmp_path_factory.mktemp("jobs-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def client_key(redis_server: LocalRedis) -> str:
    """A client key on the enterprise tier, in this module's Redis."""
    return make_key(redis_server.url, "client", "enterprise")
