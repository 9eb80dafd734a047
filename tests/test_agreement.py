"""The names and ports that outside tools depend on agree across protos, code and README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from services.classifier.service import DEFINITION as CLASSIFIER_DEFINITION
from services.ner.service import DEFINITION as NER_DEFINITION
from services.runtime.settings import (
    ClassifierSettings,
    NerSettings,
    ServiceSettings,
    SummarizerSettings,
)
from services.summarizer.service import DEFINITION as SUMMARIZER_DEFINITION
from switchyard.classifier.v1 import classifier_pb2
from switchyard.launcher import SERVICES
from switchyard.ner.v1 import ner_pb2
from switchyard.summarizer.v1 import summarizer_pb2

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()

# service name -> (proto full name, settings class, gRPC port, metrics port, env prefix)
CONTRACT: dict[str, tuple[str, type[ServiceSettings], int, int, str]] = {
    "classifier": (
        classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name,
        ClassifierSettings,
        50051,
        9051,
        "SWITCHYARD_CLASSIFIER_",
    ),
    "ner": (
        ner_pb2.DESCRIPTOR.services_by_name["NerService"].full_name,
        NerSettings,
        50052,
        9052,
        "SWITCHYARD_NER_",
    ),
    "summarizer": (
        summarizer_pb2.DESCRIPTOR.services_by_name["SummarizerService"].full_name,
        SummarizerSettings,
        50053,
        9053,
        "SWITCHYARD_SUMMARIZER_",
    ),
}


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


def test_the_launcher_starts_services_under_their_contract_names() -> None:
    for launch in SERVICES:
        full_name, _, port, metrics_port, prefix = CONTRACT[launch.name]
        assert (
            launch.full_name,
            launch.default_port,
            launch.default_metrics_port,
            launch.env_prefix,
        ) == (full_name, port, metrics_port, prefix)


def test_each_service_registers_health_under_the_name_the_launcher_waits_on() -> None:
    # The services take their health names from the generated descriptors, the launcher
    # from its own table: a rename on either side would leave `up` waiting forever.
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
