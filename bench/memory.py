"""Memory of the whole local system as ``switchyard up`` starts it: the memory of the
launcher and every process under it (the three model services and their model workers,
the gateway, the local Redis), once the gateway answers ready.

The system runs from a scratch state folder whose ``models`` is the prepared models'
folder, so the figure is the shipped registry's, with nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.process_cpu import process_tree

READY_TIMEOUT_S = 600


def _wait_ready(launcher: subprocess.Popen[bytes], run_state: Path) -> None:
    """The launcher writes its run-state file once every part is ready."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not run_state.exists():
        if launcher.poll() is not None:
            raise RuntimeError(f"switchyard up exited with {launcher.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("switchyard up was not ready in time")
        time.sleep(0.5)  # polling a file another process writes


def _memory_kib(pid: int) -> tuple[int, int]:
    """Resident and proportional set sizes (KiB) of one process: the proportional one
    divides each shared page (torch's libraries, mapped by every process) among its
    sharers, so that its sum over processes is the memory the system really takes."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Rss", "Pss"):
            found[name] = int(value.split()[0])
    return found["Rss"], found["Pss"]


def _usage(root: int) -> dict[str, tuple[float, float]]:
    """MiB resident and proportional per part of the system (processes summed by role)."""
    by_role: dict[str, tuple[float, float]] = {}
    for pid in process_tree(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            rss, pss = _memory_kib(pid)
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
        role = _role(command.strip())
        before = by_role.get(role, (0.0, 0.0))
        by_role[role] = (before[0] + rss / 1024, before[1] + pss / 1024)
    return by_role


def _role(command: str) -> str:
    for name in ("classifier", "ner", "summarizer", "gateway"):
        if f"serve {name}" in command or command.endswith(f" {name}"):
            return name
    if "redis-server" in command:
        return "redis"
    if "multiprocessing" in command or "spawn_main" in command:
        return "model workers"
    if " up" in command:
        return "launcher"
    return "other"


def run(models_dir: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        (home / "models").symlink_to(models_dir.resolve())
        env = {**os.environ, "SWITCHYARD_HOME": str(home)}
        launcher = subprocess.Popen(
            [sys.executable, "-m", "switchyard", "up"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(launcher, home / "run.json")
            by_role = _usage(launcher.pid)
        finally:
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(60)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait(10)
    return {
        "pss_mib_total": round(sum(pss for _, pss in by_role.values())),
        "rss_mib_total": round(sum(rss for rss, _ in by_role.values())),
        "pss_mib_by_part": {role: round(pss) for role, (_, pss) in sorted(by_role.items())},
    }


if __name__ == "__main__":
    from switchyard.paths import state_dir

    print(json.dumps(run(state_dir() / "models"), indent=2))
