"""The gateway's admin API as the operator's commands (``switchyard rollout ...``,
``switchyard backends ...``) call it. The gateway is ``--url`` (or ``SWITCHYARD_URL``),
the credential ``--key`` (or ``SWITCHYARD_API_KEY``); against the local system both come
from its run-state file (the development admin key)."""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

import httpx

from switchyard.run_state import gateway_trust, read_run_state

TIMEOUT_S = 30.0


class AdminApi:
    """A gateway's admin API, called with an operator's key; a refusal, or a gateway that
    cannot be reached, ends the command with the gateway's message."""

    def __init__(self, url: str, key: str, verify: ssl.SSLContext | bool = True) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.verify = verify
        """How its HTTPS certificate is checked (the local CA for ``up --tls``)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AdminApi:
        state = read_run_state()
        url = args.url or os.environ.get("SWITCHYARD_URL") or state.get("gateway_url")
        key = args.key or os.environ.get("SWITCHYARD_API_KEY") or state.get("admin_key")
        if not url or not key:
            raise SystemExit(
                "no gateway: give --url and --key (or SWITCHYARD_URL and SWITCHYARD_API_KEY),"
                " or start the local system with switchyard up"
            )
        return cls(url, key, gateway_trust(url, state))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = self.send(method, path, body)
        return reply.json() if reply.content else None

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """The gateway's answer, whatever its type; a refusal ends the command."""
        try:
            reply = httpx.request(
                method,
                self.url + path,
                json=body,
                headers=self.headers,
                timeout=TIMEOUT_S,
                verify=self.verify,
            )
        except httpx.HTTPError as error:
            raise SystemExit(f"the gateway at {self.url} cannot be reached: {error}") from None
        if reply.status_code >= 400:
            try:
                message = reply.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = reply.text
            raise SystemExit(f"refused ({reply.status_code}): {message}")
        return reply


def add_common_options(parser: argparse.ArgumentParser, reason: bool = True) -> None:
    """The options of every operator command: where the gateway is, the key, the output
    as JSON and (for a change) why it is made."""
    parser.add_argument("--url", help="the gateway (default: SWITCHYARD_URL or the local one)")
    parser.add_argument("--key", help="an operator's key or token (default: SWITCHYARD_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    if reason:
        parser.add_argument("--reason", default="", help="why (kept in the audit trail)")
