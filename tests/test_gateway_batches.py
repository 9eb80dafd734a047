"""Batch jobs through the gateway's Files and Batches API, driven by the ``openai`` SDK
as users drive it, in front of the real services and a real Redis."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks import Webhook

from gateway.jobs.webhooks import new_secret
from switchyard.redis_server import LocalRedis, local_redis
from tests.batch_support import (
    TEXTS,
    WAIT_S,
    classify_lines,
    client_key,
    jsonl,
    output_lines,
    redis_server,
    sdk,
    submit,
    wait_for,
)
from tests.conftest import make_key
from tests.support import GatewayProcess, ServiceProcess, gateway_process
from tests.webhook_receiver import receiving

WEBHOOK_SECRET = new_secret()

__all__ = ["client_key", "redis_server"]  # the module's own Redis, used by name


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
        backends,
        redis_url=redis_server.url,
        files_dir=str(files),
        jobs_poll_s="0.2",
        webhook_secret=WEBHOOK_SECRET,
        webhook_allow_hosts="127.0.0.1",
    ) as process:
        yield process


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


def test_a_bad_line_fails_validation_naming_it_and_nothing_runs(
    jobs_gateway: GatewayProcess, client_key: str
) -> None:
    client = sdk(jobs_gateway, client_key)
    good = jsonl(classify_lines(2))
    cases = {
        b"{not json\n": ("not valid JSON", None),
        jsonl([{**classify_lines(1, "x")[0], "url": "/v1/ner"}]): ("/v1/ner", "url"),
        jsonl([{**classify_lines(1, "x")[0], "url": "/v1/unknown"}]): ("/v1/unknown", "url"),
        jsonl([{**classify_lines(1, "x")[0], "method": "GET"}]): ("method", "method"),
        jsonl(classify_lines(1)): ("used before", "custom_id"),  # r0 again
    }
    for bad, (said, param) in cases.items():
        batch = wait_for(client, submit(client, good + bad).id, {"completed", "failed"})
        assert batch.status == "failed", bad
        assert batch.request_counts is None or batch.request_counts.completed == 0
        assert batch.errors is not None and batch.errors.data
        error = batch.errors.data[0]
        assert error.line == 3 and said in (error.message or "") and error.param == param
        assert batch.output_file_id is None


def test_the_endpoint_must_be_a_model_route(jobs_gateway: GatewayProcess, client_key: str) -> None:
    client = sdk(jobs_gateway, client_key)
    with pytest.raises(openai.BadRequestError, match="endpoint must be one of"):
        submit(client, classify_lines(1), endpoint="/v1/admin/keys")


def test_a_line_the_route_refuses_is_answered_in_the_error_file(
    jobs_gateway: GatewayProcess, client_key: str
) -> None:
    client = sdk(jobs_gateway, client_key)
    lines = classify_lines(3)
    lines[1]["body"] = {"texts": []}
    done = wait_for(client, submit(client, lines).id, {"completed", "failed"})
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    (failed,) = output_lines(client, done.error_file_id)
    assert failed["custom_id"] == "r1" and failed["response"]["status_code"] == 400
    assert failed["error"]["code"] == "invalid_argument"
    assert [a["custom_id"] for a in output_lines(client, done.output_file_id)] == ["r0", "r2"]


def test_another_caller_sees_none_of_it_and_operators_list_it(
    jobs_gateway: GatewayProcess, client_key: str, redis_server: LocalRedis
) -> None:
    owner = sdk(jobs_gateway, client_key)
    batch = wait_for(owner, submit(owner, classify_lines(2)).id, {"completed"})
    admin_key = make_key(redis_server.url, "admin", "enterprise")
    other = sdk(jobs_gateway, admin_key)
    for call in (
        lambda: other.batches.retrieve(batch.id),
        lambda: other.batches.cancel(batch.id),
        lambda: other.files.retrieve(batch.input_file_id),
        lambda: other.files.content(batch.output_file_id or ""),
        lambda: other.files.delete(batch.input_file_id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert batch.id not in [b.id for b in other.batches.list(limit=100).data]
    listed = httpx.get(
        f"{jobs_gateway.url}/v1/admin/batches",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert listed.status_code == 200, listed.text
    mine = [b for b in listed.json()["data"] if b["id"] == batch.id]
    assert mine and mine[0]["owner"].startswith("key:")
    client_only = httpx.get(
        f"{jobs_gateway.url}/v1/admin/batches", headers={"Authorization": f"Bearer {client_key}"}
    )
    assert client_only.status_code == 403


def test_pages_of_batches_follow_the_cursor(
    jobs_gateway: GatewayProcess, redis_server: LocalRedis
) -> None:
    client = sdk(jobs_gateway, make_key(redis_server.url, "client", "enterprise"))
    made = [submit(client, classify_lines(1)).id for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    rest = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in rest.data] == made[:1] and not rest.has_more
    assert [b.id for b in client.batches.list(limit=2)] == made[::-1]  # the SDK pages on


def test_cancel_stops_a_running_batch_at_a_checkpoint(
    jobs_gateway: GatewayProcess, client_key: str
) -> None:
    client = sdk(jobs_gateway, client_key)
    lines = classify_lines(4000)
    batch = submit(client, lines)
    running = wait_for(client, batch.id, {"in_progress", "completed"})
    while running.status == "in_progress" and running.request_counts.completed == 0:
        running = client.batches.retrieve(batch.id)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled", "completed")
    done = wait_for(client, batch.id, {"cancelled", "completed"})
    assert done.status == "cancelled", "4000 lines ran before the cancel took"
    answered = [a["custom_id"] for a in output_lines(client, done.output_file_id)]
    assert 0 < len(answered) < len(lines) and len(answered) == done.request_counts.completed
    assert answered == [line["custom_id"] for line in lines[: len(answered)]]


def test_a_spent_daily_quota_answers_the_lines_left_with_its_error(
    jobs_gateway: GatewayProcess, redis_server: LocalRedis
) -> None:
    client = sdk(jobs_gateway, make_key(redis_server.url, "client", "pro", per_day=45))
    done = wait_for(client, submit(client, classify_lines(100)).id, {"completed", "failed"})
    assert done.status == "completed"
    # Uploading, creating and polling are not model requests: the lines get all 45.
    counts = done.request_counts
    assert (counts.completed, counts.failed) == (45, 55)
    errors = output_lines(client, done.error_file_id)
    assert {e["error"]["code"] for e in errors} == {"rate_limited"}
    assert all(e["response"] is None and "daily quota" in e["error"]["message"] for e in errors)


def test_a_webhook_is_sent_the_signed_batch_when_it_ends(
    jobs_gateway: GatewayProcess, client_key: str
) -> None:
    client = sdk(jobs_gateway, client_key)
    with pytest.raises(openai.BadRequestError, match="webhook_url"):
        submit(client, classify_lines(1), metadata={"webhook_url": "http://10.1.2.3/hook"})
    with receiving(200) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        batch = submit(client, classify_lines(3), metadata={"webhook_url": url})
        assert receiver.arrived.wait(WAIT_S)
    (got,) = receiver.got
    assert got.path == "/hook"
    event = Webhook(WEBHOOK_SECRET).verify(got.body, got.headers)
    assert event["id"] == batch.id and event["status"] == "completed"
    assert event["request_counts"]["completed"] == 3


def test_open_batches_are_limited_per_tier(classifier: ServiceProcess, tmp_path: Path) -> None:
    """On a replica that runs no batches, with a Redis no other replica runs batches from,
    so that none ends while the test counts."""
    backends = {"classifier": classifier.address, "ner": "", "summarizer": ""}
    settings = {"files_dir": str(tmp_path / "files"), "jobs_run": "false"}
    with (
        local_redis(tmp_path / "redis") as alone,
        gateway_process(backends, redis_url=alone.url, **settings) as idle,
    ):
        client = sdk(idle, make_key(alone.url, "client", "pro", max_open_batches=2))
        submit(client, classify_lines(1))
        submit(client, classify_lines(1))
        with pytest.raises(openai.RateLimitError, match="2 batches are open") as refused:
            submit(client, classify_lines(1))
        assert refused.value.response.headers["x-should-retry"] == "false"
        assert len(client.batches.list().data) == 2


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("/v1/ner", {"text": "Ada Lovelace worked with Charles Babbage in London."}, "results"),
        ("/v1/summarize", {"text": "The council met on Tuesday.", "max_new_tokens": 6}, "summary"),
    ],
)
def test_ner_and_summarize_lines_answer_as_their_routes_do(
    jobs_gateway: GatewayProcess,
    client_key: str,
    endpoint: str,
    body: dict[str, Any],
    field: str,
) -> None:
    client = sdk(jobs_gateway, client_key)
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": endpoint, "body": body} for i in range(2)
    ]
    done = wait_for(client, submit(client, lines, endpoint=endpoint).id, {"completed", "failed"})
    assert done.status == "completed" and done.request_counts.completed == 2, done
    direct = httpx.post(
        f"{jobs_gateway.url}{endpoint}",
        json=body,
        headers={"Authorization": f"Bearer {client_key}"},
    )
    assert direct.status_code == 200, direct.text
    for answer in output_lines(client, done.output_file_id):
        assert answer["response"]["body"][field] == direct.json()[field]
        assert answer["response"]["body"]["version"] == direct.json()["version"]


def test_a_batch_of_chat_completions_answers_each_whole_and_refuses_a_stream(
    jobs_gateway: GatewayProcess, client_key: str
) -> None:
    client = sdk(jobs_gateway, client_key)
    questions = ["Name a colour.", "Name a fruit.", "Name a river."]
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "summarizer",
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 4,
                **({"stream": True} if i == 1 else {}),
            },
        }
        for i, question in enumerate(questions)
    ]
    batch = submit(client, lines, endpoint="/v1/chat/completions")
    done = wait_for(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    answers = output_lines(client, done.output_file_id)
    assert [a["custom_id"] for a in answers] == ["c0", "c2"]
    for answer in answers:
        body = answer["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        assert body["usage"]["completion_tokens"] <= 4
    (streamed,) = output_lines(client, done.error_file_id)
    assert streamed["custom_id"] == "c1" and streamed["response"]["status_code"] == 400
    assert streamed["response"]["body"]["error"]["param"] == "stream"
    assert streamed["error"]["code"] == "invalid_argument"
