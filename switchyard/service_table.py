"""The model services Switchyard runs, in one table: each one's name, its gRPC service's
full name (what health checks and routing ask for), its default gRPC and metrics ports,
and the prefix of its settings in the environment.

Everything that names a service reads this table: the services' settings, ``switchyard
up``, the typed clients, the gateway and the container probe; the tests check the
protos, the README and the deployment files against it. It is the ground floor of the
project and imports nothing else of it, so the lightest process (the container's health
probe) can read it at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelService:
    """One model service, as the outside world knows it."""

    name: str
    """As commands, settings and the gateway's routes name it (``switchyard serve NAME``)."""
    full_name: str
    """The proto service's full name: gRPC health is asked about this name."""
    default_port: int
    """Where it serves gRPC unless its settings say otherwise."""
    default_metrics_port: int
    """Where it serves its Prometheus metrics unless its settings say otherwise."""

    @property
    def env_prefix(self) -> str:
        """The prefix of its settings' environment variables (``SWITCHYARD_NER_``)."""
        return f"SWITCHYARD_{self.name.upper()}_"

    @property
    def gateway_backends_env(self) -> str:
        """The gateway's variable that lists this service's backend addresses."""
        return f"SWITCHYARD_GATEWAY_{self.name.upper()}_BACKENDS"

    @property
    def default_address(self) -> str:
        """Where a client on the same machine finds it by default."""
        return f"127.0.0.1:{self.default_port}"


SERVICES: tuple[ModelService, ...] = (
    ModelService("classifier", "switchyard.classifier.v1.ClassifierService", 50051, 9051),
    ModelService("ner", "switchyard.ner.v1.NerService", 50052, 9052),
    ModelService("summarizer", "switchyard.summarizer.v1.SummarizerService", 50053, 9053),
)

SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)

FULL_NAMES: dict[str, str] = {s.name: s.full_name for s in SERVICES}
"""Service name -> proto service full name."""

_BY_NAME = {s.name: s for s in SERVICES}


def model_service(name: str) -> ModelService:
    """The table's entry for ``name``; ``KeyError`` naming the known ones if none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no model service {name!r}: one of {', '.join(SERVICE_NAMES)}") from None
