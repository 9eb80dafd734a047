"""Run a command that ends when the process that started it ends, however that one
ended, SIGKILL included: ``python -m switchyard.parent_death <parent pid> <command>...``.

On Linux the kernel sends the command SIGTERM when its parent dies (``PR_SET_PDEATHSIG``),
and the setting survives the ``exec`` into the command, a Python service or a C binary
such as ``redis-server`` alike. It is set here, in a process of its own that then becomes
the command (same pid), rather than in a ``preexec_fn``: code run between fork and exec
is unsafe in a parent with threads, and the launcher has some (gRPC's, at least).

The signal fires when the *thread* that forked the child ends, not the process: a parent
must start these from a thread that lives as long as it does (its main thread).
Elsewhere than Linux the command runs untethered.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1


def tethered(command: Sequence[str]) -> list[str]:
    """``command`` wrapped so that it gets SIGTERM when this process dies."""
    return [sys.executable, "-m", "switchyard.parent_death", str(os.getpid()), *command]


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m switchyard.parent_death PARENT_PID COMMAND...", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), list(argv[1:])
    _die_with_parent()
    # The parent may have died before the line above, and then nothing would ever
    # signal this process: it must not start the command at all.
    if os.getppid() != parent:
        return 1
    os.execvp(command[0], command)  # noqa: S606 (the launcher's own command, as a list)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
