from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as redis

from gateway.access.keys import KeyStore
from services.prepare import prepare_all
from switchyard.classifier.v1 import classifier_pb2_grpc
from switchyard.redis_server import LocalRedis, local_redis
from tests.support import (
    MODELS_DIR,
    GatewayProcess,
    ServiceProcess,
    classifier_process,
    gateway_process,
    service_process,
)

# Every test's gateway sees its callers at 127.0.0.1 and shares the session's Redis, so the
# per-address throttle of failed credentials would carry one test's bad keys into the
# next test's answers; the throttle's own tests turn it on for their gateways.
os.environ.setdefault("SWITCHYARD_GATEWAY_AUTH_FAILURES_PER_MINUTE", "0")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """A real redis-server on a free port, shared by the session (tests use their own
    key prefixes or flush what they own)."""
    with local_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def client(redis_server: LocalRedis) -> AsyncIterator[redis.Redis]:
    """An asyncio client of the session's Redis."""
    connection = redis.Redis.from_url(redis_server.url)
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture(scope="session")
def prepared_models() -> Path:
    """The starter models, built once (prepare is idempotent and cached)."""
    prepare_all(MODELS_DIR)
    return MODELS_DIR


STANDARD_BATCHING: dict[str, object] = {
    "max_batch_size": 32,
    "max_queue_delay_ms": 4,
    "max_queue_size": 256,
    "max_input_chars": 200,
}


@pytest.fixture(scope="session")
def classifier(
    prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One classifier process hosting sentiment v1 and v2, shared by the session."""
    tmp = tmp_path_factory.mktemp("classifier")
    with classifier_process(
        tmp, {"v1": STANDARD_BATCHING, "v2": STANDARD_BATCHING}, max_texts_per_request="8"
    ) as service:
        yield service


@pytest.fixture(scope="session")
def ner(prepared_models: Path) -> Iterator[ServiceProcess]:
    """One NER process, shared by the session."""
    with service_process("ner", max_texts_per_request="8") as service:
        yield service


@pytest.fixture(scope="session")
def summarizer(prepared_models: Path) -> Iterator[ServiceProcess]:
    """One summarizer process, shared by the session."""
    with service_process("summarizer") as service:
        yield service


def make_key(redis_url: str, role: str, tier: str, **limits: int | None) -> str:
    """A new API key in the Redis at ``redis_url`` (as ``switchyard keys create`` makes)."""

    async def create() -> str:
        client = redis.Redis.from_url(redis_url)
        try:
            _, key = await KeyStore(client).create(f"test-{role}", role, tier, limits)
            return key
        finally:
            await client.aclose()

    return asyncio.run(create())


@pytest.fixture(scope="session")
def client_key(redis_server: LocalRedis) -> str:
    """A client key on the enterprise tier: limits far above what the tests send."""
    return make_key(redis_server.url, "client", "enterprise")


@pytest.fixture(scope="session")
def admin_key(redis_server: LocalRedis) -> str:
    return make_key(redis_server.url, "admin", "enterprise")


@pytest.fixture(scope="session")
def gateway(
    classifier: ServiceProcess,
    ner: ServiceProcess,
    summarizer: ServiceProcess,
    redis_server: LocalRedis,
) -> Iterator[GatewayProcess]:
    """One gateway in front of the session's three services and Redis."""
    backends = {
        "classifier": classifier.address,
        "ner": ner.address,
        "summarizer": summarizer.address,
    }
    with gateway_process(backends, redis_url=redis_server.url) as process:
        yield process


@pytest.fixture
def classifier_stub(
    classifier: ServiceProcess,
) -> Iterator[classifier_pb2_grpc.ClassifierServiceStub]:
    with grpc.insecure_channel(classifier.address) as channel:
        yield classifier_pb2_grpc.ClassifierServiceStub(channel)
