"""The RS256 keys bearer tokens are checked with: a JWK Set read from a file at start, or
fetched from an issuer's URL and kept fresh.

A URL's keys are fetched with httpx's async client on the event loop rather than with
PyJWT's ``PyJWKClient``: that client is synchronous (urllib), so every fetch would need a
thread, and its own cache cannot be told to keep the last good keys when a fetch fails.
Here a failed fetch is logged and the last good keys stay in use. The set is fetched at
start, every ``refresh_s``, and when a token names a ``kid`` the set does not hold (the
issuer rotated its key), but then at most once per ``min_refresh_s``: a caller sending
made-up ``kid``s must not make the gateway hammer the issuer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.exceptions import PyJWTError

log = logging.getLogger(__name__)

MIN_RSA_KEY_BITS = 2048
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1_000_000
"""A JWK Set larger than this is not a key set (and is not read whole into memory)."""

Keys = dict[str | None, jwt.PyJWK]


def parse_jwks(document: Any, origin: str) -> Keys:
    """The set's RS256 signing keys by ``kid``; ValueError naming ``origin`` if unusable."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f"JWKS {origin} is not a JWK Set: expected an object with 'keys'")
    try:
        key_set = jwt.PyJWKSet.from_dict(document)
    except PyJWTError as error:
        raise ValueError(f"JWKS {origin} holds no usable key: {error}") from error

    keys: Keys = {}
    for key in key_set:
        # Keys for other algorithms or for encryption are not ours to verify with.
        if key.algorithm_name != "RS256" or key.public_key_use not in (None, "sig"):
            continue
        if not isinstance(key.key, RSAPublicKey):
            raise ValueError(
                f"JWKS {origin} holds a private key (kid {key.key_id!r}); publish only public keys"
            )
        if key.key.key_size < MIN_RSA_KEY_BITS:
            raise ValueError(
                f"JWKS {origin}: key {key.key_id!r} has {key.key.key_size} bits, "
                f"below the minimum of {MIN_RSA_KEY_BITS}"
            )
        if key.key_id in keys:
            raise ValueError(f"JWKS {origin} has two keys with kid {key.key_id!r}")
        keys[key.key_id] = key
    if not keys:
        raise ValueError(f"JWKS {origin} has no RSA signing key for RS256")
    return keys


def load_jwks_file(path: Path) -> Keys:
    """The file's RS256 signing keys by ``kid``; ValueError naming the file if unusable."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"JWKS file {path} cannot be read as JSON: {error}") from error
    return parse_jwks(document, f"file {path}")


class JwksFetcher:
    """Keeps the keys of a JWKS URL fresh and hands each good set to ``replace``."""

    def __init__(
        self,
        url: str,
        replace: Callable[[Keys], None],
        *,
        refresh_s: float = 300.0,
        min_refresh_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._replace = replace
        self.refresh_s = refresh_s
        self.min_refresh_s = min_refresh_s
        self._client = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S)
        self._lock = asyncio.Lock()
        self._clock = clock
        self._last_attempt = -float("inf")

    async def refresh(self) -> bool:
        """Fetch the set now; whether a good one replaced the keys (a failure is logged
        and the last good keys stay)."""
        self._last_attempt = self._clock()
        try:
            reply = await self._client.get(self.url, headers={"Accept": "application/json"})
            reply.raise_for_status()
            if len(reply.content) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS {self.url} is over {MAX_JWKS_BYTES} bytes")
            keys = parse_jwks(reply.json(), self.url)
        except (httpx.HTTPError, ValueError) as error:
            log.warning("JWKS %s not fetched (the last good keys stay in use): %s", self.url, error)
            return False
        self._replace(keys)
        return True

    async def refresh_for_unknown_kid(self) -> bool:
        """Fetch the set again for a token whose ``kid`` is unknown, unless a fetch began
        less than ``min_refresh_s`` ago; whether the keys were replaced. Concurrent callers
        share one fetch (the lock), then find the interval not yet passed."""
        async with self._lock:
            if self._clock() - self._last_attempt < self.min_refresh_s:
                return False
            return await self.refresh()

    async def run(self) -> None:
        """Fetch the set every ``refresh_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.refresh_s)
            async with self._lock:
                await self.refresh()

    async def close(self) -> None:
        await self._client.aclose()
