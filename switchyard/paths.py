"""Where the local system keeps its state: models and run-state, under ``.switchyard``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """``SWITCHYARD_HOME`` if set (and not empty), else ``.switchyard`` in the repository."""
    return Path(os.environ.get("SWITCHYARD_HOME") or REPO_ROOT / ".switchyard")
