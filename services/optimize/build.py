"""``switchyard models prepare`` for optimized versions: every registry version that runs on
ONNX Runtime is built from its reference version, measured against it, and kept only if
it agrees closely enough.

A version is built in two cached steps, each a version folder of its own with its
``prepared.json``: the float32 export, kept beside the reference as ``<reference>-onnx``
(or in the version's own folder when the version is not quantized), and for an int8
version its quantization of that export. Each step's fingerprint holds what made it (the
reference folder's contents, the export or quantization settings and library versions,
the held-out data), so a changed reference is exported again and its int8 version
quantized again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.optimize import agreement
from services.optimize.export import (
    EXPORT_SETTINGS,
    QUANTIZATION_SETTINGS,
    Task,
    export_onnx,
    quantize_int8,
)
from services.prepare import MARKER, build_version
from services.runtime.registry import HUB_PREFIX, ServiceSpec, VersionSpec, load_registry
from services.runtime.settings import DEFAULT_REGISTRY

Measure = Callable[[Path, Path], dict[str, float]]
"""Figures of an ONNX folder (second) measured against its eager reference (first)."""


@dataclass(frozen=True)
class OptimizedFamily:
    """How the versions of one service's models are exported, measured and judged."""

    service: str
    task: Task
    measure: Measure
    data: Path
    floors: Mapping[str, float]
    ceilings: Mapping[str, float] = field(default_factory=dict)


def optimized_families() -> tuple[OptimizedFamily, ...]:
    """The services whose versions may run on ONNX Runtime, and how each is judged."""
    from services.classifier.training import HELDOUT_FILE
    from services.ner.training import TEST_FILE

    return (
        OptimizedFamily(
            "classifier",
            "sequence-classification",
            agreement.measure_classifier,
            HELDOUT_FILE,
            agreement.CLASSIFIER_FLOORS,
            agreement.CLASSIFIER_CEILINGS,
        ),
        OptimizedFamily(
            "ner", "token-classification", agreement.measure_ner, TEST_FILE, agreement.NER_FLOORS
        ),
    )


def prepare_optimized(
    models_dir: Path, force: bool = False, registry: Path = DEFAULT_REGISTRY
) -> dict[str, dict[str, float]]:
    """Build every ONNX Runtime version the registry names; returns each one's figures
    by "model/version"."""
    figures = {}
    for family in optimized_families():
        service = load_registry(registry, family.service)
        for spec in service.version_specs():
            if spec.runtime == "onnxruntime":
                reference = reference_of(service, spec)
                figures[f"{spec.model}/{spec.version}"] = prepare_version(
                    family, spec, reference, models_dir, force
                )
    return figures


def reference_of(service: ServiceSpec, spec: VersionSpec) -> VersionSpec:
    """The eager version ``spec`` is made from, as the registry names it."""
    versions = service.models[spec.model].versions
    reference = versions.get(spec.reference)
    if reference is None:
        raise SystemExit(
            f"{spec.model} {spec.version}: its reference {spec.reference!r} is not a version"
            f" of {spec.model} (one of: {', '.join(versions)})"
        )
    if reference.runtime != "transformers":
        raise SystemExit(
            f"{spec.model} {spec.version}: its reference {spec.reference} must run on"
            f" transformers, not {reference.runtime}"
        )
    return reference.model_copy(update={"model": spec.model, "version": spec.reference})


def prepare_version(
    family: OptimizedFamily,
    spec: VersionSpec,
    reference: VersionSpec,
    models_dir: Path,
    force: bool = False,
    floors: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Build one ONNX Runtime version from ``reference`` unless it is up to date, and
    refuse it (SystemExit, nothing written) when a figure is below ``floors`` (the
    family's by default; the float32 export an int8 version is quantized from is held to
    the family's floors)."""
    reference_dir = _folder(reference, models_dir)
    out = _folder(spec, models_dir)
    own_floors = family.floors if floors is None else floors
    exported = (
        out
        if spec.quantization == "none"
        else reference_dir.with_name(f"{reference_dir.name}-onnx")
    )
    measured_on = {
        "data": hashlib.sha256(family.data.read_bytes()).hexdigest(),
        "measurement": agreement.MEASUREMENT_REVISION,
    }

    def export(scratch: Path) -> dict[str, float]:
        export_onnx(family.task, reference_dir, scratch)
        return family.measure(reference_dir, scratch)

    export_fingerprint = {
        "reference": folder_digest(reference_dir),
        "task": family.task,
        "export": EXPORT_SETTINGS,
        "libraries": _versions("torch", "transformers", "onnxscript"),
        **measured_on,
    }
    export_label = f"{spec.model} {reference.version} exported to ONNX"
    export_floors = own_floors if exported == out else family.floors
    figures = _gated_build(
        exported,
        export_fingerprint,
        export,
        export_label,
        reference,
        export_floors,
        family.ceilings,
        force,
    )
    if spec.quantization == "none":
        return figures

    def quantize(scratch: Path) -> dict[str, float]:
        quantize_int8(exported, scratch)
        return family.measure(reference_dir, scratch)

    quantize_fingerprint = {
        "exported": json.loads((exported / MARKER).read_text())["fingerprint"],
        "quantization": QUANTIZATION_SETTINGS,
        "libraries": _versions("onnxruntime", "onnx"),
        **measured_on,
    }
    label = f"{spec.model} {spec.version}"
    return _gated_build(
        out, quantize_fingerprint, quantize, label, reference, own_floors, family.ceilings, force
    )


def _gated_build(
    out: Path,
    fingerprint: Mapping[str, object],
    build: Callable[[Path], dict[str, float]],
    label: str,
    reference: VersionSpec,
    floors: Mapping[str, float],
    ceilings: Mapping[str, float],
    force: bool,
) -> dict[str, float]:
    def gated(scratch: Path) -> dict[str, float]:
        figures = build(scratch)
        # Refused inside the build: the scratch folder is removed and nothing is kept.
        agreement.refuse_below_floor(label, reference.version, figures, floors, ceilings)
        return figures

    figures = build_version(out, dict(fingerprint), gated, force)
    # A version kept from an earlier run is judged again: the floors may have been raised.
    agreement.refuse_below_floor(label, reference.version, figures, floors, ceilings)
    return figures


def _folder(spec: VersionSpec, models_dir: Path) -> Path:
    if spec.weights.startswith(HUB_PREFIX):
        raise SystemExit(
            f"{spec.model} {spec.version}: prepare builds ONNX versions from and into model"
            f" folders, not hub ids ({spec.weights})"
        )
    return Path(spec.weights_location(models_dir))


def folder_digest(folder: Path) -> str:
    """A digest of every file in ``folder`` (names and contents) but its marker."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in packages}
