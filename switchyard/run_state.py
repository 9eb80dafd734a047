"""The local system's run-state file: where ``switchyard up`` put Redis and the gateway,
and the development keys it made, so that CLI commands find them with no configuration.
Readable by its owner only: it holds keys."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from typing import Any

from switchyard.paths import state_dir


def run_state_path() -> Path:
    return state_dir() / "run.json"


def write_private_json(path: Path, content: object) -> Path:
    """``content`` as JSON in a file only its owner can read (it holds keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with owner-only permissions before anything secret is written to it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(content, f, indent=2)
    os.chmod(path, 0o600)
    return path


def write_run_state(state: dict[str, Any]) -> Path:
    return write_private_json(run_state_path(), state)


def read_run_state() -> dict[str, Any]:
    path = run_state_path()
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def clear_run_state() -> None:
    run_state_path().unlink(missing_ok=True)


def redis_url() -> str | None:
    """``REDIS_URL`` if set, else the local system's Redis from the run-state file."""
    return os.environ.get("REDIS_URL") or read_run_state().get("redis_url")


def gateway_trust(url: str, state: dict[str, Any]) -> ssl.SSLContext | bool:
    """What an HTTPS client checks ``url``'s certificate with: the local system's CA
    (``switchyard up --tls``) for the local gateway, else the usual roots."""
    ca_file = state.get("tls_ca_file")
    if ca_file and url.rstrip("/") == str(state.get("gateway_url", "")).rstrip("/"):
        return ssl.create_default_context(cafile=ca_file)
    return True
