"""``switchyard jobs`` against a real gateway in front of the real classifier: the same
batch a user would run with the ``openai`` SDK, submitted, followed, listed and
downloaded from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.cli import main
from switchyard.processes import ServiceProcess
from switchyard.redis_server import LocalRedis
from tests.batch_support import classify_lines, client_key, jsonl, redis_server
from tests.support import GatewayProcess, gateway_process

__all__ = ["client_key", "redis_server"]  # the module's own Redis, used by name


@pytest.fixture(scope="module")
def gateway_for_jobs(
    classifier: ServiceProcess, redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    backends = {"classifier": classifier.address, "ner": "", "summarizer": ""}
    files = tmp_path_factory.mktemp("files")
    with gateway_process(
        backends, redis_url=redis_server.url, files_dir=str(files), jobs_poll_s="0.2"
    ) as gateway:
        yield gateway


def test_submit_follows_a_batch_to_its_end_and_download_writes_its_answers(
    gateway_for_jobs: GatewayProcess,
    client_key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = ["--url", gateway_for_jobs.url, "--key", client_key]
    requests = tmp_path / "requests.jsonl"
    lines = classify_lines(40, prefix="cli")
    requests.write_bytes(jsonl(lines))
    assert (
        main(["jobs", "submit", str(requests), "--endpoint", "/v1/classify", "--json", *where]) == 0
    )
    batch = json.loads(capsys.readouterr().out)
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 40
    assert main(["jobs", "list", *where]) == 0
    assert batch["id"] in capsys.readouterr().out
    assert main(["jobs", "status", batch["id"], *where]) == 0
    assert "completed" in capsys.readouterr().out
    answers = tmp_path / "answers.jsonl"
    assert main(["jobs", "download", batch["id"], "-o", str(answers), *where]) == 0
    got = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [a["custom_id"] for a in got] == [line["custom_id"] for line in lines]
    assert main(["jobs", "download", batch["id"], "--errors", *where]) == 1  # none failed


def test_a_refusal_ends_the_command_with_the_gateways_message(
    gateway_for_jobs: GatewayProcess, client_key: str, tmp_path: Path
) -> None:
    where = ["--url", gateway_for_jobs.url, "--key", client_key]
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(jsonl(classify_lines(1)))
    with pytest.raises(SystemExit, match="endpoint must be one of"):
        main(["jobs", "submit", str(requests), "--endpoint", "/v1/nothing", *where])
    with pytest.raises(SystemExit, match="404"):
        main(["jobs", "status", "batch_unknown", *where])
