"""``models prepare`` for the summarizer's CTranslate2 versions: each is converted from the
transformers folder of its reference version, and kept only when it agrees with the
reference on the held-out texts (``agreement``): the same greedy output for a float32
conversion, a floor on next-token agreement for an int8 one.

The converted folder holds the tokenizer, its chat template and the generation config
beside the weights, so that it serves on its own. Everything is read from local folders:
the conversion never reaches a model hub.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.runtime.registry import Quantization
from services.summarizer import agreement

CONVERSION = 2  # bump when the conversion or its agreement figures change
SERVING_THREADS = 1
"""The threads the agreement is measured with: those `switchyard up` gives a service."""


@dataclass(frozen=True)
class ConvertedVersion:
    """A summarizer version that prepare converts for CTranslate2."""

    reference: str
    quantization: Quantization


VERSIONS = {
    "v1-ct2": ConvertedVersion(reference="v1", quantization="none"),
    "v1-ct2-int8": ConvertedVersion(reference="v1", quantization="int8"),
}

_COMPUTE_TYPES: dict[Quantization, str] = {"none": "float32", "int8": "int8"}


def converter_version() -> str:
    """The installed CTranslate2's version, or a clear refusal when it is missing."""
    try:
        import ctranslate2
    except ImportError as error:
        raise SystemExit(
            f"the summarizer's CTranslate2 versions need the ctranslate2 package ({error}):"
            " pip install ctranslate2"
        ) from error
    return str(ctranslate2.__version__)


def convert(reference: Path, out: Path, quantization: Quantization) -> None:
    """Convert the transformers folder ``reference`` into a CTranslate2 folder ``out``."""
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoTokenizer

    TransformersConverter(str(reference)).convert(
        str(out), quantization=_COMPUTE_TYPES[quantization], force=True
    )
    AutoTokenizer.from_pretrained(reference).save_pretrained(out)
    # The end-of-sequence ids the reference stops on.
    shutil.copy2(reference / "generation_config.json", out / "generation_config.json")


@functools.cache
def _reference_ids(reference: Path) -> list[list[int]]:
    """The reference's greedy ids on the held-out texts, generated once for all the
    versions converted from it in one prepare."""
    from services.summarizer.model import CausalLmSummarizer

    return agreement.greedy_ids(CausalLmSummarizer(str(reference)), agreement.read_heldout())


def measure_agreement(reference: Path, candidate: Path) -> agreement.Agreement:
    """Greedy output of the converted folder against its reference's, on the held-out
    texts, and its next-token agreement fed the reference's tokens."""
    from services.summarizer.ctranslate2_model import Ctranslate2Summarizer

    texts = agreement.read_heldout()
    expected = _reference_ids(reference)
    converted = Ctranslate2Summarizer(str(candidate), SERVING_THREADS)
    measured = agreement.greedy_ids(converted, texts)
    next_token = agreement.next_token_agreement(converted, texts, expected)
    return agreement.compare(expected, measured, next_token=next_token)


def _fingerprint(reference: Path, plan: ConvertedVersion) -> dict[str, object]:
    from services.prepare import MARKER

    marker = reference / MARKER
    if not marker.exists():
        raise SystemExit(f"{reference} is not prepared: it has no {MARKER}")
    return {
        "reference": json.loads(marker.read_text())["fingerprint"],
        "converter": converter_version(),
        "conversion": CONVERSION,
        "quantization": plan.quantization,
        "heldout": agreement.HELDOUT_FILE.read_text(),
        "new_tokens": agreement.NEW_TOKENS,
    }


def prepare_ctranslate2_versions(
    models_dir: Path, force: bool = False
) -> dict[str, dict[str, float]]:
    """Convert every CTranslate2 version whose folder is not current; returns each one's
    agreement figures (kept in its prepared.json). Refuses (SystemExit) a version that
    disagrees with its reference, leaving any previous folder as it was."""
    from services.prepare import build_version

    figures = {}
    for version, plan in VERSIONS.items():
        reference = models_dir / "summarizer" / plan.reference

        def build(
            out: Path,
            reference: Path = reference,
            plan: ConvertedVersion = plan,
            version: str = version,
        ) -> dict[str, float]:
            convert(reference, out, plan.quantization)
            measured = measure_agreement(reference, out)
            agreement.check(measured, plan.quantization, version, plan.reference)
            return measured.figures()

        figures[version] = build_version(
            models_dir / "summarizer" / version, _fingerprint(reference, plan), build, force
        )
    return figures
