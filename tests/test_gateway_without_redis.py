"""With no Redis at all the gateway keeps keys, limits, stream tokens, its cache and
batch jobs in its own process, and says so loudly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.access.keys import key_hash, new_key
from tests.batch_support import classify_lines, output_lines, submit, wait_for
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, ServiceProcess, gateway_process


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


def test_seeded_keys_limits_and_stream_tokens_work_in_one_process(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    client_id, client_key = new_key()
    admin_id, admin_key = new_key()
    seeds = [
        {
            "id": client_id,
            "owner": "dev",
            "role": "client",
            "tier": "free",
            "hash": key_hash(client_key),
            "limits": {"per_minute": 3},
        },
        {
            "id": admin_id,
            "owner": "dev",
            "role": "admin",
            "tier": "enterprise",
            "hash": key_hash(admin_key),
        },
    ]
    seed_file = tmp_path / "seed-keys.json"
    seed_file.write_text(json.dumps(seeds))
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    with gateway_process(backends, seed_keys_file=str(seed_file)) as gateway:
        gateway.wait_log(lambda r: str(r.get("message", "")).startswith("NO REDIS"))
        auth = {"Authorization": f"Bearer {client_key}"}
        statuses = [classify(gateway, auth).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert classify(gateway, {"Authorization": "Bearer " + new_key()[1]}).status_code == 401

        admin = {"X-API-Key": admin_key}
        made = httpx.post(f"{gateway.url}/v1/admin/keys", json={"owner": "x"}, headers=admin)
        assert made.status_code == 201
        fresh = {"X-API-Key": made.json()["key"]}
        issued = httpx.post(f"{gateway.url}/v1/summarize/stream-token", headers=fresh)
        token = issued.json()["stream_token"]
        params = {"text": "x", "stream_token": token}
        opened = httpx.get(f"{gateway.url}/v1/summarize/stream", params=params)
        assert opened.status_code == 200
        assert "event: token" in opened.text
        assert httpx.get(f"{gateway.url}/v1/summarize/stream", params=params).status_code == 401
        # EventSource reconnects with the same URL and the last id it saw: the used token
        # still resumes the stream it opened, from this process's own replay buffer.
        ids = [line[4:] for line in opened.text.splitlines() if line.startswith("id: ")]
        again = httpx.get(
            f"{gateway.url}/v1/summarize/stream", params=params, headers={"Last-Event-ID": ids[0]}
        )
        assert again.status_code == 200
        assert "piece0" not in again.text and "piece1" in again.text and "piece2" in again.text
        assert [line[4:] for line in again.text.splitlines() if line.startswith("id: ")] == ids[1:]


def classify(gateway: GatewayProcess, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/classify", json={"text": "x"}, headers=headers)


def test_batch_jobs_run_in_the_one_process(classifier: ServiceProcess, tmp_path: Path) -> None:
    key_id, key = new_key()
    seed = {"id": key_id, "owner": "dev", "role": "client", "tier": "pro", "hash": key_hash(key)}
    seed_file = tmp_path / "seed-keys.json"
    seed_file.write_text(json.dumps([seed]))
    backends = {"classifier": classifier.address, "ner": "", "summarizer": ""}
    files = tmp_path / "files"
    with gateway_process(
        backends, seed_keys_file=str(seed_file), files_dir=str(files), jobs_poll_s="0.2"
    ) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        lines = classify_lines(70)
        batch = submit(client, lines)
        done = wait_for(client, batch.id, {"completed", "failed"})
        assert done.status == "completed", done
        answers = output_lines(client, done.output_file_id)
        assert [a["custom_id"] for a in answers] == [line["custom_id"] for line in lines]
        assert [b.id for b in client.batches.list().data] == [batch.id]


def test_access_tokens_revocations_and_throttled_failures_in_one_process(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    key_id, key = new_key()
    seed = {"id": key_id, "owner": "dev", "role": "client", "tier": "pro", "hash": key_hash(key)}
    seed_file = tmp_path / "seed-keys.json"
    seed_file.write_text(json.dumps([seed]))
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    settings = {
        "seed_keys_file": str(seed_file),
        "token_signing_key": "a-signing-key-for-one-process-long-enough",
        "auth_failures_per_minute": "3",
    }
    with gateway_process(backends, **settings) as gateway:
        traded = httpx.post(f"{gateway.url}/v1/auth/token", headers={"X-API-Key": key})
        assert traded.status_code == 200, traded.text
        token = {"Authorization": f"Bearer {traded.json()['access_token']}"}
        assert classify(gateway, token).status_code == 200
        assert httpx.post(f"{gateway.url}/v1/auth/revoke", headers=token).status_code == 204
        assert classify(gateway, token).status_code == 401  # the first invalid credential

        bad = {"Authorization": "Bearer " + new_key()[1]}
        assert [classify(gateway, bad).status_code for _ in range(3)] == [401, 401, 429]
        assert classify(gateway, {"X-API-Key": key}).status_code == 429
