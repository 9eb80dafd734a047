"""The names and ports that outside tools depend on agree with the service table
(``switchyard.service_table``): the protos, the services' settings and health names, the
launcher, the README and the deployment files (Docker, Compose, Kubernetes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import GatewaySettings
from services.classifier.service import DEFINITION as CLASSIFIER_DEFINITION
from services.ner.service import DEFINITION as NER_DEFINITION
from services.runtime.settings import SETTINGS_CLASSES, ServiceSettings, settings_class
from services.summarizer.service import DEFINITION as SUMMARIZER_DEFINITION
from switchyard.classifier.v1 import classifier_pb2
from switchyard.local_children import service_child
from switchyard.ner.v1 import ner_pb2
from switchyard.service_table import SERVICE_NAMES, SERVICES, model_service
from switchyard.summarizer.v1 import summarizer_pb2
from tests.deploy_support import (
    COMPOSE_FILE,
    DEPLOY_README,
    K8S,
    compose,
    compose_env,
    dockerfile,
    yaml_documents,
)

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()

PROTOS = {
    "classifier": classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"],
    "ner": ner_pb2.DESCRIPTOR.services_by_name["NerService"],
    "summarizer": summarizer_pb2.DESCRIPTOR.services_by_name["SummarizerService"],
}

# service name -> (proto full name, settings class, gRPC port, metrics port, env prefix)
CONTRACT: dict[str, tuple[str, type[ServiceSettings], int, int, str]] = {
    s.name: (
        s.full_name,
        settings_class(s.name),
        s.default_port,
        s.default_metrics_port,
        s.env_prefix,
    )
    for s in SERVICES
}


def test_the_table_names_every_proto_service_by_its_full_name() -> None:
    assert {s.name: s.full_name for s in SERVICES} == {
        name: proto.full_name for name, proto in PROTOS.items()
    }
    ports = [p for s in SERVICES for p in (s.default_port, s.default_metrics_port)]
    assert len(set(ports)) == len(ports)  # one machine runs them all (switchyard up)
    assert tuple(SETTINGS_CLASSES) == SERVICE_NAMES


@pytest.mark.parametrize("service", sorted(CONTRACT))
def test_settings_defaults_and_prefix_match_the_contract(service: str) -> None:
    full_name, settings_cls, port, metrics_port, prefix = CONTRACT[service]
    assert full_name == f"switchyard.{service}.v1.{full_name.rsplit('.', 1)[1]}"
    assert settings_cls.service_name == service
    assert settings_cls.model_config.get("env_prefix") == prefix
    settings = settings_cls()
    assert (settings.port, settings.metrics_port) == (port, metrics_port)


@pytest.mark.parametrize("service", sorted(CONTRACT))
def test_readme_service_table_matches_the_contract(service: str) -> None:
    full_name, _, port, metrics_port, prefix = CONTRACT[service]
    row = next(line for line in README.splitlines() if line.startswith(f"| {service} |"))
    cells = [c.strip().strip("`") for c in row.strip("|").split("|")]
    assert cells == [service, full_name, str(port), str(metrics_port), prefix]


def test_the_launcher_starts_services_under_their_contract_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for launch in SERVICES:
        full_name, _, port, metrics_port, prefix = CONTRACT[launch.name]
        for variable in ("PORT", "METRICS_PORT", "TORCH_THREADS"):
            monkeypatch.delenv(f"{prefix}{variable}", raising=False)
        child = service_child(launch, torch_threads=1)
        assert (
            launch.full_name,
            child.spec.port,
            child.metrics_port,
            launch.env_prefix,
        ) == (full_name, port, metrics_port, prefix)
        # Operators' scripts find each service process by this command line.
        assert child.spec.command[-3:] == ["switchyard", "serve", launch.name]
        assert child.spec.env[f"{prefix}PORT"] == str(port)
        assert child.spec.env[f"{prefix}TORCH_THREADS"] == "1"


def test_each_service_registers_health_under_the_name_the_launcher_waits_on() -> None:
    # The services take their health names from the generated descriptors, the launcher
    # from the table: a rename on either side would leave `up` waiting forever.
    definitions = {
        d.name: d for d in (CLASSIFIER_DEFINITION, NER_DEFINITION, SUMMARIZER_DEFINITION)
    }
    assert {launch.name: launch.full_name for launch in SERVICES} == {
        name: d.full_name for name, d in definitions.items()
    }
    assert all(d.full_name == CONTRACT[name][0] for name, d in definitions.items())


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"SWITCHYARD_<SERVICE>_([A-Z_]+)", README))
    fields = {name.upper() for name in ServiceSettings.model_fields}
    assert fields == documented


def test_every_gateway_setting_is_documented_in_the_readme() -> None:
    # Rows name a setting in full or, after the first of a pair, by its suffix (`_PORT`).
    missing = [
        name
        for name in GatewaySettings.model_fields
        if f"SWITCHYARD_GATEWAY_{name.upper()}" not in README and f"`_{name.upper()}`" not in README
    ]
    assert missing == []


def test_grpcurl_examples_name_real_methods() -> None:
    services = {
        s.full_name: {m.name for m in s.methods}
        for module in (classifier_pb2, ner_pb2, summarizer_pb2)
        for s in module.DESCRIPTOR.services_by_name.values()
    }
    calls = re.findall(r"(switchyard\.[a-z]+\.v1\.[A-Za-z]+)/([A-Za-z]+)", README)
    assert calls
    for service, method in calls:
        assert method in services[service], f"{service}/{method}"


# --- the deployment files ----------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(CONTRACT))
def test_deploy_readme_service_table_matches_the_table(service: str) -> None:
    entry = model_service(service)
    text = DEPLOY_README.read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {service} |"))
    cells = [c.strip().strip("`") for c in row.strip("|").split("|")]
    assert cells[:4] == [
        service,
        entry.full_name,
        str(entry.default_port),
        str(entry.default_metrics_port),
    ]


def test_the_service_image_exposes_every_port_of_the_table() -> None:
    exposed = {
        int(port)
        for instruction in dockerfile().stages["service"].all("EXPOSE")
        for port in instruction.arguments.split()
    }
    assert exposed == {p for s in SERVICES for p in (s.default_port, s.default_metrics_port)}


@pytest.mark.parametrize("service", sorted(CONTRACT))
def test_compose_runs_each_service_on_its_table_port_and_probes_its_full_name(
    service: str,
) -> None:
    entry = model_service(service)
    composed = compose()["services"][service]
    assert composed["command"] == ["serve", service]
    env = compose_env(composed)
    # Its own settings, and OpenTelemetry's (traces, README "Traces").
    own = [name for name in env if not name.startswith("OTEL_")]
    assert all(name.startswith(entry.env_prefix) for name in own), (COMPOSE_FILE, env)
    # The services run on their default ports there (no PORT setting overrides them).
    assert f"{entry.env_prefix}PORT" not in env
    assert composed["healthcheck"]["test"][-2:] == [entry.default_address, entry.full_name]


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, document)
        for path in sorted(K8S.rglob("*.yaml"))
        for document in yaml_documents(path)
        if isinstance(document, dict) and "kind" in document
    ]


def _serving(document: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The model service a Deployment runs (``serve <service>``) and its container."""
    if document["kind"] != "Deployment":
        return None
    (container,) = document["spec"]["template"]["spec"]["containers"]
    args = container.get("args", [])
    if args[:1] != ["serve"]:
        return None
    return str(args[1]), container


def test_k8s_model_services_listen_and_are_probed_as_the_table_says() -> None:
    served = set()
    for path, document in _k8s_objects():
        found = _serving(document)
        if found is None:
            continue
        service, container = found
        entry = model_service(service)
        served.add(service)
        where = (path.relative_to(REPO), document["metadata"]["name"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": entry.default_port, "metrics": entry.default_metrics_port}, where
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {
                "port": entry.default_port,
                "service": entry.full_name,
            }, (where, probe)
        annotations = document["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(entry.default_metrics_port), where
        names = [e["name"] for e in container.get("env", [])]
        assert all(n.startswith(entry.env_prefix) for n in names if n.startswith("SWITCHYARD_"))
    assert served == {s.name for s in SERVICES}


def test_k8s_services_of_model_pods_carry_the_table_ports() -> None:
    pods: dict[str, str] = {}
    for _, document in _k8s_objects():
        found = _serving(document)
        if found is not None:
            labels = document["spec"]["template"]["metadata"]["labels"]
            pods[labels["app.kubernetes.io/name"]] = found[0]
    checked = 0
    for path, document in _k8s_objects():
        if document["kind"] != "Service":
            continue
        service = pods.get(document["spec"]["selector"].get("app.kubernetes.io/name"))
        if service is None:
            continue
        entry = model_service(service)
        ports = {p["name"]: p["port"] for p in document["spec"]["ports"]}
        assert ports == {"grpc": entry.default_port, "metrics": entry.default_metrics_port}, path
        checked += 1
    assert checked >= len(SERVICES)


def test_k8s_gateway_reaches_each_service_on_its_table_port() -> None:
    texts = [p.read_text() for p in sorted(K8S.rglob("*")) if p.suffix in (".env", ".yaml")]
    routes = [
        (name.lower(), addresses)
        for text in texts
        for name, addresses in re.findall(r"SWITCHYARD_GATEWAY_([A-Z]+)_BACKENDS=(\S+)", text)
    ]
    assert {name for name, _ in routes} == {s.name for s in SERVICES}
    for name, addresses in routes:
        for address in addresses.split(","):
            assert address.rpartition(":")[2] == str(model_service(name).default_port), address
