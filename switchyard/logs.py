"""JSON log lines on stderr, one object per line, for every Switchyard process.

A record logged while a request is handled carries that request's id: the gateway and
the services set ``request_id`` for the duration of each call.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str] = ContextVar("request_id", default="")


_SECRETS = re.compile(
    r"(?P<key>sy_[a-z0-9]{10}_)[0-9a-f]{48}"
    r"|(?P<stream>sst_)[0-9a-f]{48}"
    r"|(?P<jwt>eyJ[\w-]+\.[\w-]+\.[\w-]*)"
    r"|(?P<bearer>[Bb]earer )\S+"
)


def mask_secrets(text: str) -> str:
    """API keys keep their public id, stream tokens their prefix; tokens go entirely."""

    def masked(match: re.Match[str]) -> str:
        if match.group("jwt"):
            return "<token>"
        return f"{match.group('key') or match.group('stream') or match.group('bearer')}***"

    return _SECRETS.sub(masked, text)


class _MaskSecretsFilter(logging.Filter):
    """No key or token reaches a log line, whoever logs it (a library's error included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = mask_secrets(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current:
            record.request_id = current
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every record to stderr as one JSON object carrying the service's name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_MaskSecretsFilter())
    # A record need not carry the thread, process or source line (none is logged), and
    # finding them cost a system call and a stack walk per record: a tenth of the
    # gateway's CPU per request went to its access log.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # transformers and httpx are chatty at INFO; their warnings still show.
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
