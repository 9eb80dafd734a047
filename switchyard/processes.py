"""Model services run as child processes on free ports, for tests and benchmarks.

A service started with port 0 logs the ports it bound (its ``listening`` record); this
helper reads them from the JSON log, waits for SERVING on the health Watch stream, and
reads the service's Prometheus metrics.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from switchyard.client.tls import open_channel
from switchyard.readiness import gateway_base_url, service_tls
from switchyard.service_table import FULL_NAMES, model_service

CLASSIFIER = FULL_NAMES["classifier"]
NER = FULL_NAMES["ner"]
SUMMARIZER = FULL_NAMES["summarizer"]
STARTUP_TIMEOUT_S = 240.0


def free_port() -> int:
    """A port nothing listens on now (for processes that must be told their port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_classifier_registry(
    path: Path, models_dir: Path, versions: Mapping[str, Mapping[str, object]]
) -> Path:
    """A classifier registry hosting prepared sentiment ``versions`` with the given
    settings per version (batch sizes, queue bounds, limits)."""
    lines = [
        "[classifier]",
        'default_model = "sentiment"',
        "",
        "[classifier.models.sentiment]",
        f'default_version = "{min(versions)}"',
        "",
    ]
    for version, options in versions.items():
        lines.append(f"[classifier.models.sentiment.versions.{version}]")
        lines.append(f"weights = {json.dumps(str(models_dir / 'sentiment' / version))}")
        lines.append('labels = ["negative", "positive"]')
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in options.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class SwitchyardProcess:
    """A Switchyard process started with ``python -m switchyard <args>`` (the environment
    with ``env`` on top, ``unset`` left out): its JSON log records (kept, and waited on),
    its Prometheus page, and its stop by SIGTERM. Its stdout is discarded unless
    ``keep_stdout``."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        unset: Collection[str] = (),
        keep_stdout: bool = False,
    ) -> None:
        self.logs: list[dict[str, object]] = []
        self._logged = threading.Condition()
        self._listening = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchyard", *args],
            env={k: v for k, v in os.environ.items() if k not in unset} | dict(env),
            stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # Its own process group, as a service in a container or a terminal has: a
            # signal to the group reaches the process and its model workers alike.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_logs, daemon=True)
        self._reader.start()

    def _on_listening(self, record: dict[str, object]) -> None:
        raise NotImplementedError

    @property
    def metrics_url(self) -> str:
        raise NotImplementedError

    def _read_logs(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"message": line.rstrip()}
            with self._logged:
                self.logs.append(record)
                self._logged.notify_all()
            if record.get("message") == "listening":
                self._on_listening(record)
                self._listening.set()
        self._listening.set()  # the process ended: wake any waiter

    def wait_listening(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        if not self._listening.wait(timeout_s) or self.process.poll() is not None:
            raise RuntimeError(f"{self.process.args!r} did not start: {self.logs[-20:]}")

    def wait_log(
        self, matches: Callable[[dict[str, object]], bool], timeout_s: float = 60.0
    ) -> dict[str, object]:
        """The first log record that ``matches``, waiting for it to be written."""
        with self._logged:
            found = self._logged.wait_for(
                lambda: next((r for r in self.logs if matches(r)), None), timeout_s
            )
        if found is None:
            raise AssertionError(f"no such log record; the last ones: {self.logs[-10:]}")
        return found

    def metric(self, name: str, labels: dict[str, str]) -> float:
        """The current value of one sample on the /metrics page (0 if absent)."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as reply:  # noqa: S310
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def wait_metric(
        self, name: str, labels: dict[str, str], value: float, timeout_s: float = 60.0
    ) -> None:
        """Wait until a metric reaches ``value`` (a state the test is waiting on)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.metric(name, labels) == value:
                return
            time.sleep(0.02)
        raise AssertionError(f"{name}{labels} never reached {value}: {self.metric(name, labels)}")

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


class ServiceProcess(SwitchyardProcess):
    """A model service started as its own process, as ``switchyard serve`` runs it."""

    def __init__(self, service: str, env: Mapping[str, str]) -> None:
        self.service = service
        self.port = 0
        self.metrics_port = 0
        self.env = dict(env)
        super().__init__(["serve", service], env)

    def _on_listening(self, record: dict[str, object]) -> None:
        self.port = int(str(record["grpc_port"]))
        self.metrics_port = int(str(record["metrics_port"]))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def wait_serving(self, full_name: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Block on the health Watch stream until SERVING (over TLS if it serves TLS)."""
        self.wait_listening(timeout_s)
        with open_channel(self.address, (), service_tls(self.env, full_name)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=full_name)
            for reply in stub.Watch(request, timeout=timeout_s):
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        raise RuntimeError(f"{self.service} never became SERVING: {self.logs[-20:]}")


class GatewayProcess(SwitchyardProcess):
    """The HTTP gateway started as its own process (``switchyard gateway``) on a free
    port, in front of the given backends."""

    def __init__(self, backends: Mapping[str, str], **settings: str) -> None:
        self.port = 0
        env = {
            "SWITCHYARD_GATEWAY_PORT": "0",
            "SWITCHYARD_GATEWAY_HOST": "127.0.0.1",
            **{model_service(name).gateway_backends_env: a for name, a in backends.items()},
            **{f"SWITCHYARD_GATEWAY_{k.upper()}": v for k, v in settings.items()},
        }
        self.env = env
        super().__init__(["gateway"], env)

    def _on_listening(self, record: dict[str, object]) -> None:
        self.port = int(str(record["http_port"]))

    @property
    def url(self) -> str:
        """``https://...`` when its settings give it a certificate."""
        return gateway_base_url(self.env, self.port)[0]

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until /readyz answers 200 (every backend SERVING)."""
        self.wait_listening(timeout_s)
        deadline = time.monotonic() + timeout_s
        url = f"{self.url}/readyz"
        context = gateway_base_url(self.env, self.port)[1]
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=10, context=context) as reply:  # noqa: S310
                    if reply.status == 200:
                        return
            except OSError:
                pass  # not answering yet, or a backend not SERVING yet
            time.sleep(0.05)
        raise RuntimeError(f"the gateway never became ready: {self.logs[-20:]}")


@contextmanager
def gateway_process(backends: Mapping[str, str], **settings: str) -> Iterator[GatewayProcess]:
    """A gateway on a free port, ready when yielded and stopped afterwards."""
    gateway = GatewayProcess(backends, **settings)
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.terminate()


@contextmanager
def service_process(
    service: str, registry: Path | None = None, **settings: str
) -> Iterator[ServiceProcess]:
    """A service process on free ports (the shipped registry unless one is given),
    SERVING when yielded and stopped afterwards."""
    prefix = model_service(service).env_prefix
    env = {
        f"{prefix}PORT": "0",
        f"{prefix}METRICS_PORT": "0",
        f"{prefix}HOST": "127.0.0.1",
        f"{prefix}TORCH_THREADS": "1",
        **({f"{prefix}REGISTRY": str(registry)} if registry else {}),
        **{f"{prefix}{k.upper()}": v for k, v in settings.items()},
    }
    process = ServiceProcess(service, env)
    try:
        process.wait_serving(FULL_NAMES[service])
        yield process
    finally:
        process.terminate()
