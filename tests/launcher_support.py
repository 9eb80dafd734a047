"""``switchyard up`` as the tests run it: its banner, the launcher's and its children's
JSON log records (they share its stderr), calls through its gateway, and the processes
it leaves behind, read from ``/proc``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping
from itertools import count
from pathlib import Path

import httpx

from switchyard.processes import SwitchyardProcess

STOP_WAIT_S = 120.0
NOTICE_S = 30.0  # the launcher noticing that a child exited
_texts = count()


class LauncherProcess(SwitchyardProcess):
    """``switchyard up <args>`` with no ``REDIS_URL`` (the environment gives it its own
    state folder)."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        super().__init__(["up", *args], env, unset=("REDIS_URL",), keep_stdout=True)

    def _on_listening(self, record: dict[str, object]) -> None:
        pass  # a child's record: the launcher's own ``up`` record says where each listens

    def wait_up(self, timeout_s: float) -> dict[str, object]:
        """The launcher's ``up`` record (every child started and ready, pids and ports);
        fails at once if the launcher exits first."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._logged:
                self._logged.wait_for(lambda: self._up() is not None, timeout=1.0)
            up = self._up()
            if up is not None:
                return up
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the launcher did not come up: {self.logs[-20:]}")

    def _up(self) -> dict[str, object] | None:
        return next(
            (r for r in self.logs if r.get("service") == "launcher" and r.get("message") == "up"),
            None,
        )

    def banner(self) -> list[str]:
        """What it printed up to "Press Ctrl-C" (printed before its ``up`` record)."""
        assert self.process.stdout is not None
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        return lines

    def current(self, child: str) -> dict[str, object]:
        """The launcher's last record of starting ``child`` (its pid and port)."""
        started = [r for r in list(self.logs) if r.get("child") == child and "port" in r]
        return started[-1]

    def pid(self, child: str) -> int:
        return int(str(self.current(child)["pid"]))

    def port(self, child: str) -> int:
        return int(str(self.current(child)["port"]))

    def kill(self, child: str) -> tuple[int, dict[str, object]]:
        """SIGKILL ``child``; its pid and the launcher's record of its exit."""
        pid = self.pid(child)
        os.kill(pid, signal.SIGKILL)
        exited = self.wait_log(
            lambda r: r.get("child") == child and r.get("pid") == pid and "exit_code" in r,
            NOTICE_S,
        )
        return pid, exited

    def stop_with(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_WAIT_S)


class GatewayCaller:
    """Calls through a launched gateway with one API key, each with a text of its own
    (the gateway's cache must not answer for the service)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    def call(self, route: str) -> httpx.Response:
        text = f"Ingrid Halvorsen loves Lisbon ({next(_texts)})"
        return httpx.post(
            f"{self.url}/v1/{route}",
            json={"text": text},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        )

    def answer_once_back(self, route: str, timeout_s: float) -> httpx.Response:
        """The first answer that is not 503 (nor a refused connection): what a caller gets
        once what was away is back."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reply = self.call(route)
                if reply.status_code != 503:
                    return reply
            except httpx.TransportError:
                pass  # the gateway is not listening yet
            assert time.monotonic() < deadline, f"/v1/{route} did not come back"
            time.sleep(0.2)


def launcher_env(home: Path, models_dir: Path, ports: Mapping[str, int]) -> dict[str, str]:
    """Its own state folder, the prepared models, loopback, and the given gRPC port per
    service (0: the launcher picks a free one and keeps it); metrics and gateway ports 0."""
    env = {
        "SWITCHYARD_HOME": str(home),
        "SWITCHYARD_GATEWAY_PORT": "0",
        "SWITCHYARD_GATEWAY_HOST": "127.0.0.1",
    }
    for name, port in ports.items():
        prefix = f"SWITCHYARD_{name.upper()}_"
        env |= {
            f"{prefix}PORT": str(port),
            f"{prefix}METRICS_PORT": "0",
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}MODELS_DIR": str(models_dir),
        }
    return env


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces and parentheses.
    return stat.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every process started by ``pid``, directly or not, that runs now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if alive(p)}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_gone(pids: Iterable[int], timeout_s: float) -> dict[int, str]:
    """Wait until none of ``pids`` runs; the command line of each one still running when
    the time ran out."""
    deadline = time.monotonic() + timeout_s
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return {p: command_line(p) for p in left}
