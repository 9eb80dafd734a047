"""Child processes kept running: one that exits unexpectedly is started again, with the
same command, environment and port, after a delay that doubles with each quick failure;
one stopped on purpose is not.

The supervisor does its work when its owner calls ``tend`` (the launcher does, a few
times a second, from its main thread). It never starts a thread, so every child is
forked from the thread that calls ``start`` and ``tend``: a child tethered to its parent
(``switchyard.parent_death``) is signalled when that thread ends, which for the main
thread means when the launcher ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from switchyard.parent_death import tethered

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child, the same way every time."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    """Where the child listens: a restart asks for this same port again."""
    discard_output: bool = False
    """Send its stdout and stderr nowhere (else they are the launcher's)."""


@dataclass(frozen=True)
class RestartBackoff:
    """The wait before each restart: ``first_s``, doubling with every restart in a row up
    to ``cap_s``; a child that stayed up ``stable_after_s`` starts again from ``first_s``."""

    first_s: float = 0.5
    cap_s: float = 30.0
    stable_after_s: float = 60.0

    def delay_s(self, restarts_in_a_row: int) -> float:
        return min(self.cap_s, self.first_s * 2.0 ** min(restarts_in_a_row, 32))


@dataclass
class Child:
    """A supervised child: its current process, or the time it is due to start again."""

    spec: ChildSpec
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    in_a_row: int = 0
    """Restarts since it last stayed up ``stable_after_s``: what the delay grows with."""
    restart_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


def _popen(spec: ChildSpec) -> subprocess.Popen[bytes]:
    output = subprocess.DEVNULL if spec.discard_output else None
    # A session of its own: the terminal's Ctrl-C reaches the launcher alone, which then
    # drains the children in order; and the child's helpers (model workers) share its
    # process group, so that they can be ended with it.
    return subprocess.Popen(
        tethered(spec.command),
        env=spec.env,
        stdout=output,
        stderr=output,
        start_new_session=True,
    )


def _kill_group(pid: int) -> None:
    """End what is left of a child's process group (helpers of a child that died)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"code {code} ({signal.Signals(-code).name})"
    return f"code {code}"


class Supervisor:
    """Starts children, restarts the ones that exit, and stops them on request."""

    def __init__(self, backoff: RestartBackoff | None = None) -> None:
        self.backoff = backoff or RestartBackoff()
        self._children: dict[str, Child] = {}

    def start(self, spec: ChildSpec) -> Child:
        """Start ``spec`` now and supervise it from the next ``tend`` on."""
        child = Child(spec, _popen(spec), time.monotonic())
        self._children[spec.name] = child
        log.info(
            "%s started: pid %d, port %d",
            spec.name,
            child.pid,
            spec.port,
            extra={"child": spec.name, "pid": child.pid, "port": spec.port},
        )
        return child

    def child(self, name: str) -> Child:
        return self._children[name]

    def names(self) -> list[str]:
        return list(self._children)

    def pids(self) -> dict[str, int]:
        """Each child's current pid (its last one while it waits to start again)."""
        return {name: c.pid for name, c in self._children.items()}

    def ports(self) -> dict[str, int]:
        return {name: c.spec.port for name, c in self._children.items()}

    def tend(self) -> None:
        """Notice the children that exited, and start again the ones whose wait is over."""
        now = time.monotonic()
        for child in self._children.values():
            if child.restart_at is None:
                self._notice_exit(child, now)
            elif now >= child.restart_at:
                self._restart(child, now)

    def _notice_exit(self, child: Child, now: float) -> None:
        code = child.process.poll()
        if code is None:
            return
        _kill_group(child.pid)
        if now - child.started_at >= self.backoff.stable_after_s:
            child.in_a_row = 0  # it had been up a while: not a crash loop
        delay_s = self.backoff.delay_s(child.in_a_row)
        child.in_a_row += 1
        child.restarts += 1
        child.restart_at = now + delay_s
        log.warning(
            "%s exited with %s; restarting in %.1f s (restart %d)",
            child.spec.name,
            _describe(code),
            delay_s,
            child.restarts,
            extra={
                "child": child.spec.name,
                "pid": child.pid,
                "exit_code": code,
                "restart_in_s": delay_s,
                "restart": child.restarts,
            },
        )

    def _restart(self, child: Child, now: float) -> None:
        child.process = _popen(child.spec)
        child.started_at = now
        child.restart_at = None
        log.info(
            "%s restarted: pid %d, port %d (restart %d)",
            child.spec.name,
            child.pid,
            child.spec.port,
            child.restarts,
            extra={
                "child": child.spec.name,
                "pid": child.pid,
                "port": child.spec.port,
                "restart": child.restarts,
            },
        )

    def stop(self, names: Sequence[str], timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the named children together (each drains) and wait for them, killing
        what is left after ``timeout_s``; they are not restarted. Returns the worst exit
        code (0 when each stopped cleanly)."""
        stopping = [self._children.pop(n) for n in names if n in self._children]
        running = [c for c in stopping if c.restart_at is None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        worst = 0
        deadline = time.monotonic() + timeout_s
        for child in running:
            try:
                code = child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop in %.0f s; killing it",
                    child.spec.name,
                    timeout_s,
                    extra={"child": child.spec.name, "pid": child.pid},
                )
                _kill_group(child.pid)
                code = child.process.wait()
            # Dying of the SIGTERM sent here (a child that had not yet set up its drain)
            # is the stop that was asked for.
            worst = worst or (0 if code == -signal.SIGTERM else code)
        for child in stopping:
            _kill_group(child.pid)
        return worst
