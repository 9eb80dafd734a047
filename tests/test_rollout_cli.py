"""The operator's commands against a real gateway in front of the real classifier (hosting
sentiment v1 and v2), finding the gateway and the admin key in the run-state file as
they do against the local system."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchyard.cli import main
from switchyard.processes import ServiceProcess
from switchyard.redis_server import local_redis
from switchyard.run_state import write_run_state
from tests.conftest import make_key
from tests.support import GatewayProcess, gateway_process


@pytest.fixture
def system(
    tmp_path: Path,
    classifier: ServiceProcess,
    ner: ServiceProcess,
    summarizer: ServiceProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway with a Redis of its own (routing tables are shared state), and the
    run-state file of a local system pointing at it."""
    backends = {
        "classifier": classifier.address,
        "ner": ner.address,
        "summarizer": summarizer.address,
    }
    with (
        local_redis(tmp_path / "redis") as redis,
        gateway_process(backends, redis_url=redis.url, routing_follow_s="0.2") as gateway,
    ):
        admin_key = make_key(redis.url, "admin", "enterprise")
        client_key = make_key(redis.url, "client", "enterprise")
        monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("SWITCHYARD_URL", raising=False)
        monkeypatch.delenv("SWITCHYARD_API_KEY", raising=False)
        write_run_state({"gateway_url": gateway.url, "admin_key": admin_key})
        yield gateway, client_key


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_status_lists_the_hosted_versions_before_any_rollout(
    system: tuple[GatewayProcess, str], capsys: pytest.CaptureFixture[str]
) -> None:
    shown = run(capsys, "rollout", "status", "sentiment")
    assert "no routing table" in shown
    rows = {row[0]: row for row in (line.split() for line in shown.splitlines()) if row}
    assert rows["v1"][1:3] == ["default", "100%"]
    assert rows["v2"][1:3] == ["hosted", "-"]


def test_an_operator_rolls_out_v2_from_the_command_line(
    system: tuple[GatewayProcess, str], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, client_key = system
    started = run(capsys, "rollout", "start", "sentiment", "--canary", "v2", "--weight", "10",
                  "--guardrails", "--reason", "new model")  # fmt: skip
    rows = {line.split()[0]: line.split() for line in started.splitlines() if line[:2] == "v1"}
    rows |= {line.split()[0]: line.split() for line in started.splitlines() if line[:2] == "v2"}
    assert rows["v1"][1:3] == ["stable", "90%"]
    assert rows["v2"][1:3] == ["canary", "10%"]

    for _ in range(5):
        reply = httpx.post(
            f"{gateway.url}/v1/classify",
            json={"text": "I love it"},
            headers={"X-API-Key": client_key},
            timeout=30,
        )
        assert reply.status_code == 200
        assert reply.headers["x-route-reason"] in ("stable", "canary")
    deadline = time.monotonic() + 60
    while "positive" not in (shown := run(capsys, "rollout", "status", "sentiment")):
        assert time.monotonic() < deadline, shown
    assert "guardrails, v2: waiting for 50 requests each" in shown

    run(capsys, "rollout", "set-weight", "sentiment", "50", "--reason", "looks fine")
    paused = run(capsys, "rollout", "pause", "sentiment")
    assert "automatic steps paused" in paused
    run(capsys, "rollout", "resume", "sentiment")
    promoted = run(capsys, "rollout", "promote", "sentiment", "--sunset", "2027-01-01T00:00:00Z")
    assert "sunset 2027-01-01T00:00:00Z" in promoted
    table = [line.split() for line in promoted.splitlines() if line.strip()]
    assert [row[1] for row in table if row[0] in ("v1", "v2")] == ["deprecated", "stable"]
    answer = httpx.post(
        f"{gateway.url}/v1/classify",
        json={"text": "I love it"},
        headers={"X-API-Key": client_key, "X-Model-Version": "v1"},
        timeout=30,
    )
    assert answer.headers["sunset"] == "Fri, 01 Jan 2027 00:00:00 GMT"

    audit = run(capsys, "rollout", "audit", "sentiment")
    actions = [line.split()[2] for line in audit.splitlines()]
    assert actions == ["promote", "resume", "pause", "set-weight", "start"]
    assert "new model" in audit and "admin" in audit

    listed = run(capsys, "backends", "list")
    assert "sentiment v1, sentiment v2" in listed


def test_refused_changes_exit_with_the_gateways_message(
    system: tuple[GatewayProcess, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "rollout", "start", "sentiment", "--canary", "v2", "--weight", "5")
    with pytest.raises(
        SystemExit,
        match=r"refused \(400\): weight: must be at most 100",
    ):
        main(["rollout", "set-weight", "sentiment", "150"])
    with pytest.raises(SystemExit, match=r"refused \(404\): no backend lists sentiment v9"):
        main(["rollout", "start", "sentiment", "--canary", "v9", "--weight", "5"])
    with pytest.raises(SystemExit, match="refused \\(403\\)"):
        main(["rollout", "set-weight", "sentiment", "20", "--key", system[1]])
    rolled = run(capsys, "rollout", "rollback", "sentiment", "--reason", "manual")
    assert "0%" in next(line for line in rolled.splitlines() if line.startswith("v2"))


def wait_for_comparisons(capsys: pytest.CaptureFixture[str], model: str, n: int) -> str:
    """``rollout status`` once the shadow of ``model`` has ``n`` comparisons (bounded)."""
    deadline = time.monotonic() + 120
    while f"n={n}" not in (shown := run(capsys, "rollout", "status", model)):
        assert time.monotonic() < deadline, shown
    return shown


def test_an_operator_shadows_a_version_of_each_model_from_the_command_line(
    system: tuple[GatewayProcess, str], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, client_key = system
    headers = {"X-API-Key": client_key}
    started = run(capsys, "rollout", "shadow", "sentiment", "v2", "--share", "100",
                  "--reason", "dark launch")  # fmt: skip
    assert "shadow v2 (100% of stable's requests): agreement -, n=0" in started
    texts = ["I love it", "I hate it", "It is fine", "What a great day"]
    reply = httpx.post(
        f"{gateway.url}/v1/classify", json={"texts": texts}, headers=headers, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-model-version"] == "v1"
    shown = wait_for_comparisons(capsys, "sentiment", 4)
    line = next(x for x in shown.splitlines() if x.startswith("shadow v2"))
    assert re.fullmatch(
        r"shadow v2 \(100% of stable's requests\): agreement \d+\.\d% \(95% CI \d+\.\d%"
        r"\u2013\d+\.\d%\), n=4; mean score difference \d\.\d{3}",
        line,
    ), line
    assert re.search(r"latency stable \d+\.\d ms, shadow \d+\.\d ms .*0 failed, 0 dropped", shown)

    # NER (the int8 build against its reference) and the summarizer (the reference
    # against its CTranslate2 conversion, the default).
    run(capsys, "rollout", "shadow", "ner", "v1-int8", "--share", "100")
    entities = httpx.post(
        f"{gateway.url}/v1/ner",
        json={"texts": ["Ada Lovelace lived in London.", "Paris is in France."]},
        headers=headers,
        timeout=30,
    )
    assert entities.status_code == 200, entities.text
    assert re.search(
        r"shadow v1-int8 .*: entity F1 \d+\.\d%", wait_for_comparisons(capsys, "ner", 2)
    )
    run(capsys, "rollout", "shadow", "summarizer", "v1", "--share", "100")
    summary = httpx.post(
        f"{gateway.url}/v1/summarize",
        json={"text": "The council met on Monday and agreed to open the new library in May.",
              "max_new_tokens": 8},
        headers=headers,
        timeout=60,
    )  # fmt: skip
    assert summary.status_code == 200, summary.text
    assert summary.json()["version"] == "v1-ct2"
    shown = wait_for_comparisons(capsys, "summarizer", 1)
    assert re.search(r"shadow v1 .*: ROUGE-L \d+\.\d%, n=1; length ratio \d\.\d\d", shown), shown

    # A canary whose guardrails want 50 comparisons of shadow agreement first.
    with pytest.raises(SystemExit, match=r"refused \(409\): v2 has 4 shadow comparisons"):
        main(["rollout", "start", "sentiment", "--canary", "v2", "--weight", "5",
              "--min-samples", "50", "--min-shadow-agreement", "0.5"])  # fmt: skip
    stopped = run(capsys, "rollout", "shadow", "sentiment", "--stop", "--reason", "enough")
    assert "shadow v2" not in stopped
    audit = run(capsys, "rollout", "audit", "sentiment")
    assert [line.split()[2] for line in audit.splitlines()] == ["shadow-stop", "shadow"]
    with pytest.raises(SystemExit, match=r"refused \(409\): sentiment has no shadow version"):
        main(["rollout", "shadow", "sentiment", "--stop"])
    with pytest.raises(SystemExit, match=r"refused \(400\): v1 is the stable version"):
        main(["rollout", "shadow", "sentiment", "v1", "--share", "5"])
    with pytest.raises(SystemExit, match="give the shadow version and --share"):
        main(["rollout", "shadow", "sentiment", "v2"])
