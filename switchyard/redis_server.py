"""A local ``redis-server`` (the Debian package) bound to loopback: ephemeral for the
tests, persistent (an append-only file) for ``switchyard up``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from switchyard.processes import free_port

STARTUP_TIMEOUT_S = 30.0


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def redis_server_command(executable: str, port: int, workdir: Path, persistent: bool) -> list[str]:
    """The command line of a redis-server on ``127.0.0.1:port`` keeping its files in
    ``workdir``; with ``persistent`` every write goes to an append-only file there, which
    a restart in the same folder loads back, and its log to ``redis.log`` there (why it
    would not start again, say)."""
    if persistent:
        # everysec, not always: a write reaches the file (write(2), the page cache) before
        # its reply is sent, so a killed redis-server loses nothing it acknowledged (unless
        # the disk stalls: while an fsync lasts over a second, Redis may hold writes back
        # for up to two). What everysec risks is the last second when the machine itself
        # stops; fsync on every write would save it at a twentieth of the write rate
        # (measured, one client: 13,000-18,000 writes/s against 500-1,300), and the
        # gateway writes to Redis on every request.
        files = ["--appendonly", "yes", "--appendfsync", "everysec"]
        files += ["--logfile", str(workdir / "redis.log")]
    else:
        files = ["--appendonly", "no"]
    return [
        executable,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",  # no RDB snapshots: the append-only file alone, or nothing
        *files,
        "--dir",
        str(workdir),
        "--loglevel",
        "warning",
    ]


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def wait_answering(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait until the redis-server on ``port`` answers PING; False if ``process`` ended
    or the time ran out."""
    deadline = time.monotonic() + timeout_s
    while not answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class LocalRedis:
    """One redis-server process; ``url`` is where it listens."""

    def __init__(self, workdir: Path, port: int = 0, persistent: bool = False) -> None:
        executable = redis_server_path()
        if executable is None:
            raise FileNotFoundError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            redis_server_command(executable, self.port, workdir, persistent),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_answering(self.port, self.process, STARTUP_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def local_redis(workdir: Path, port: int = 0, persistent: bool = False) -> Iterator[LocalRedis]:
    server = LocalRedis(workdir, port, persistent)
    try:
        yield server
    finally:
        server.stop()
