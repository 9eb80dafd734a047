"""Callers known to this process only: a batch job's lines are sent through the gateway's
own routes (in process, never over the network) as the caller who created the job, each
carrying a token minted for that job. A token is random, lives in this process's memory
and nowhere else, and stops working when its job stops; a request from outside that
carries the header with any other value is treated as if it had none."""

from __future__ import annotations

import secrets

from gateway.access.auth import INTERNAL_CALLER_HEADER, Caller

__all__ = ["INTERNAL_CALLER_HEADER", "InternalCallers"]


class InternalCallers(dict[str, Caller]):
    """Token: caller (the ``Authenticator`` looks tokens up in it)."""

    def mint(self, caller: Caller) -> str:
        token = secrets.token_urlsafe(32)
        self[token] = caller
        return token

    def forget(self, token: str) -> None:
        self.pop(token, None)
