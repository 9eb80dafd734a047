"""``switchyard up --services classifier,gateway --replicas classifier=2 --envoy``: two
replicas on ports of their own behind a real Envoy, the gateway pointed at Envoy; calls
through the gateway reach both replicas, and a killed Envoy is started again by the
supervisor while the gateway waits for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchyard.envoy import hosts, wait_hosts_healthy
from tests.launcher_support import GatewayCaller, LauncherProcess, launcher_env

pytestmark = pytest.mark.timeout(300)

START_S = 240.0
BACK_S = 60.0


@pytest.fixture(scope="module")
def launched(
    prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LauncherProcess, GatewayCaller]]:
    home = tmp_path_factory.mktemp("home")
    env = launcher_env(home, prepared_models, {"classifier": 0}) | {
        "SWITCHYARD_CLASSIFIER_ONLY_VERSIONS": "sentiment:v1",
        "SWITCHYARD_GATEWAY_CACHE_TTL_S": "0",
    }
    args = ["--services", "classifier,gateway", "--replicas", "classifier=2", "--envoy"]
    launcher = LauncherProcess([*args, "--torch-threads", "1"], env)
    try:
        launcher.wait_up(START_S)
        state = json.loads((home / "run.json").read_text())
        yield launcher, GatewayCaller(state["gateway_url"], state["client_key"])
    finally:
        launcher.terminate()


def test_the_gateway_reaches_both_replicas_through_envoy(
    launched: tuple[LauncherProcess, GatewayCaller],
) -> None:
    launcher, gateway = launched
    text = "".join(launcher.banner())
    admin = launcher.port("envoy")
    assert f"envoy       admin http://127.0.0.1:{admin}/clusters" in text
    replicas = {f"127.0.0.1:{launcher.port(f'classifier-{i}')}" for i in (1, 2)}
    assert set(hosts(admin, "classifier")) == replicas
    for _ in range(20):
        assert gateway.call("classify").status_code == 200
    assert {h for h, state in hosts(admin, "classifier").items() if state.requests} == replicas


def test_a_killed_envoy_is_started_again(launched: tuple[LauncherProcess, GatewayCaller]) -> None:
    launcher, gateway = launched
    pid, exited = launcher.kill("envoy")
    assert exited["exit_code"] == -9
    launcher.wait_log(lambda r: r.get("child") == "envoy" and r.get("restart") == 1, BACK_S)
    assert wait_hosts_healthy(launcher.port("envoy"), "classifier", 2, BACK_S)
    assert launcher.pid("envoy") != pid
    reply = gateway.answer_once_back("classify", BACK_S)
    assert reply.status_code == 200, reply.text
    assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
