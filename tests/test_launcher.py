"""``switchyard up`` starts every service, Redis and the gateway, and keeps them up: a
service, the gateway or Redis that dies comes back on its port while the rest keep
answering, Redis comes back with every key, Ctrl-C still stops everything, and no child
outlives a killed launcher. Started with a subset of the services, its gateway knows only
those.

One launched system serves the tests in turn, as a developer's would; the Ctrl-C test
stops it, so it comes last of them.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.client import ClassifierClient, NerClient, SummarizerClient
from switchyard.redis_server import answers_ping
from switchyard.supervisor import RestartBackoff
from tests.launcher_support import (
    NOTICE_S,
    GatewayCaller,
    LauncherProcess,
    descendants,
    launcher_env,
    wait_gone,
)
from tests.support import FULL_NAMES, free_port

START_S = 300.0  # three model services loading side by side on a loaded machine
BACK_S = 180.0  # a killed service loading its model again
GONE_S = 60.0  # children draining and exiting
CHILDREN = ("classifier", "ner", "summarizer", "gateway", "redis")


@dataclass
class System:
    launcher: LauncherProcess
    home: Path
    banner: list[str]
    gateway: GatewayCaller


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def serving(port: int, full_name: str) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service=full_name)
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (past connections of the last one
    may linger in TIME_WAIT, as servers allow)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def system(prepared_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    home = tmp_path_factory.mktemp("home")
    # The classifier on port 0: the launcher picks a free port, and a restart keeps it.
    ports = {"classifier": 0, "ner": free_port(), "summarizer": free_port()}
    env = launcher_env(home, prepared_models, ports) | {
        # One sentiment version: each start of the classifier loads one model, not two.
        "SWITCHYARD_CLASSIFIER_ONLY_VERSIONS": "sentiment:v1",
    }
    launcher = LauncherProcess([], env)
    try:
        launcher.wait_up(START_S)
        banner = launcher.banner()
        state = json.loads((home / "run.json").read_text())
        yield System(
            launcher, home, banner, GatewayCaller(state["gateway_url"], state["client_key"])
        )
    finally:
        launcher.terminate()


def test_up_serves_every_service_the_gateway_and_development_keys(system: System) -> None:
    text = "".join(system.banner)
    assert "Switchyard is up" in text, text
    for name, full_name in FULL_NAMES.items():
        assert f"127.0.0.1:{system.launcher.port(name)} ({full_name})" in text
    assert f"{system.gateway.url}/" in text

    classifier_address = f"127.0.0.1:{system.launcher.port('classifier')}"
    with ClassifierClient(classifier_address, timeout_s=60) as classifier:
        reply = classifier.classify(["I love this"])
        assert reply.results[0].labels[0].label == "positive"
    with NerClient(f"127.0.0.1:{system.launcher.port('ner')}", timeout_s=60) as ner:
        found = ner.extract_entities(["Ingrid Halvorsen moved to Lisbon."])
        assert "Lisbon" in {e.text for e in found.results[0].entities}
    with SummarizerClient(f"127.0.0.1:{system.launcher.port('summarizer')}") as summarizer:
        assert summarizer.summarize("Paris is in France.", max_new_tokens=8).summary

    # The development keys are printed, each on a line of its own, and kept in the
    # run-state file, readable by the user only.
    client_key = system.banner[system.banner.index("  client key (development):\n") + 1]
    run_state = system.home / "run.json"
    assert run_state.stat().st_mode & 0o777 == 0o600
    state = json.loads(run_state.read_text())
    assert state["client_key"] == client_key.strip() == system.gateway.key
    assert state["redis_url"] == f"redis://127.0.0.1:{system.launcher.port('redis')}/0"
    classify = f"{system.gateway.url}/v1/classify"
    assert httpx.post(classify, json={"text": "I love this"}, timeout=60).status_code == 401
    answer = system.gateway.call("classify")
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["labels"][0]["label"] == "positive"


def test_a_killed_service_comes_back_on_its_port_and_only_its_calls_wait(system: System) -> None:
    others = {name: system.launcher.pid(name) for name in CHILDREN if name != "classifier"}
    port = system.launcher.port("classifier")

    pid, exited = system.launcher.kill("classifier")
    assert exited["exit_code"] == -signal.SIGKILL
    # Its replacement takes seconds to load its model; meanwhile the gateway says when to
    # retry, and answers for the other services as before.
    down = system.gateway.call("classify")
    assert down.status_code == 503, down.text
    assert down.headers["Retry-After"] == "1"
    assert down.json()["error"]["code"] == "unavailable"
    assert system.gateway.call("ner").status_code == 200

    restarted = system.launcher.wait_log(
        lambda r: (
            r.get("child") == "classifier" and r.get("restart") == exited["restart"] and "port" in r
        ),
        NOTICE_S,
    )
    assert restarted["port"] == port
    assert restarted["pid"] != pid
    wait_until(lambda: serving(port, FULL_NAMES["classifier"]), BACK_S, "never SERVING again")
    back = system.gateway.answer_once_back("classify", BACK_S)
    assert back.status_code == 200, back.text
    assert back.json()["results"][0]["labels"][0]["label"] == "positive"
    assert {name: system.launcher.pid(name) for name in others} == others


def test_a_killed_gateway_comes_back_on_its_port(system: System) -> None:
    port = system.launcher.port("gateway")
    pid, exited = system.launcher.kill("gateway")
    assert exited["exit_code"] == -signal.SIGKILL
    back = system.gateway.answer_once_back("ner", BACK_S)
    assert back.status_code == 200, back.text
    assert system.launcher.pid("gateway") != pid
    assert system.launcher.port("gateway") == port
    assert system.gateway.url == f"http://127.0.0.1:{port}"


def test_a_killed_redis_comes_back_on_its_port_with_every_key(system: System) -> None:
    port = system.launcher.port("redis")
    # A write acknowledged just before the kill survives it too: it reached the
    # append-only file before its reply was sent.
    with redis.Redis(port=port) as client:
        client.set("test:written-last", "yes")
    pid, exited = system.launcher.kill("redis")
    assert exited["exit_code"] == -signal.SIGKILL
    wait_until(lambda: system.launcher.pid("redis") != pid, NOTICE_S, "redis not restarted")
    assert system.launcher.port("redis") == port
    wait_until(lambda: answers_ping(port), NOTICE_S, "redis does not answer again")

    # The development key printed at start still authenticates (a lost key is a 401).
    back = system.gateway.answer_once_back("ner", BACK_S)
    assert back.status_code == 200, back.text
    with redis.Redis(port=port) as client:
        assert client.get("test:written-last") == b"yes"


def test_ctrl_c_stops_every_child_and_restarts_none(system: System) -> None:
    children = descendants(system.launcher.process.pid)
    assert {system.launcher.pid(name) for name in CHILDREN} <= children
    logged = len(system.launcher.logs)

    code = system.launcher.stop_with(signal.SIGINT)
    assert code == 0, system.launcher.logs[logged:]
    # Every process it started is gone: services, their model workers, Redis, gateway.
    assert wait_gone(children, GONE_S) == {}
    assert not [r for r in system.launcher.logs[logged:] if "restart" in r]
    assert not (system.home / "run.json").exists()


def test_up_with_a_subset_is_ready_for_what_it_started_and_knows_nothing_else(
    prepared_models: Path, tmp_path: Path
) -> None:
    # No address of ner or the summarizer anywhere: the launcher must not give the gateway
    # one (nothing listens there), or /readyz would name them and `up` never be ready.
    env = launcher_env(tmp_path, prepared_models, {"classifier": 0}) | {
        "SWITCHYARD_CLASSIFIER_ONLY_VERSIONS": "sentiment:v1",
    }
    launcher = LauncherProcess(["--services", "classifier,gateway"], env)
    try:
        pids = launcher.wait_up(START_S)["pids"]
        assert isinstance(pids, dict) and set(pids) == {"classifier", "redis", "gateway"}
        # Ready: the development keys printed and the run-state file written.
        banner = "".join(launcher.banner())
        assert "client key (development):" in banner, banner
        state = json.loads((tmp_path / "run.json").read_text())
        gateway = GatewayCaller(state["gateway_url"], state["client_key"])

        ready = httpx.get(f"{gateway.url}/readyz", timeout=60)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        assert gateway.call("classify").status_code == 200
        # The gateway signs access tokens with a key the launcher gave it.
        auth = {"Authorization": f"Bearer {state['client_key']}"}
        traded = httpx.post(f"{gateway.url}/v1/auth/token", headers=auth, timeout=60)
        assert traded.status_code == 200, traded.text
        absent = gateway.call("ner")
        assert absent.status_code == 503, absent.text
        assert absent.json()["error"]["code"] == "unavailable"

        # With the classifier away, /readyz names it, and it alone.
        classifier = f"classifier@127.0.0.1:{launcher.port('classifier')}"
        launcher.kill("classifier")
        ready = httpx.get(f"{gateway.url}/readyz", timeout=60)
        assert ready.status_code == 503, ready.text
        assert ready.json()["failing"] == [classifier]
    finally:
        launcher.terminate()


def test_a_killed_launcher_leaves_no_child_and_a_second_one_is_refused(tmp_path: Path) -> None:
    # The gateway and Redis alone (the gateway tethered as a service is), started in
    # seconds; the gateway's backends are addresses where nothing listens.
    env = launcher_env(tmp_path, tmp_path, {}) | {
        f"SWITCHYARD_GATEWAY_{name.upper()}_BACKENDS": f"127.0.0.1:{free_port()}"
        for name in FULL_NAMES
    }
    launcher = LauncherProcess(["--services", "gateway"], env)
    try:
        up = launcher.wait_up(START_S)
        pids, ports = up["pids"], up["ports"]
        assert isinstance(pids, dict) and isinstance(ports, dict)
        children = descendants(launcher.process.pid)
        assert {int(pid) for pid in pids.values()} <= children
        # One launcher per state folder: a second would append to the same Redis files.
        second = LauncherProcess(["--services", "gateway"], env)
        assert second.process.wait(timeout=60) == 1
        second.terminate()
        assert "another switchyard up runs" in str(second.logs[-1]["message"])

        launcher.process.kill()
        launcher.process.wait()
        assert wait_gone(children, GONE_S) == {}
        for port in ports.values():
            assert port_is_free(int(port))
    finally:
        launcher.terminate()


def test_restarts_wait_longer_each_time_in_a_row_up_to_a_cap() -> None:
    backoff = RestartBackoff(first_s=0.5, cap_s=30.0)
    assert [backoff.delay_s(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_s(10_000) == 30.0
