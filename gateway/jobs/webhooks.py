"""Batch-job callbacks as Standard Webhooks: a job may name a URL, and when it ends the
gateway POSTs the batch object there, signed with HMAC-SHA256 in the ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` headers, retried with backoff.

The gateway calls these URLs on a caller's behalf, so it never reaches into its own
network for one: only https, or a host on the operator's allowlist; and no host that is
or resolves to a loopback, link-local, private, reserved, multicast or unspecified
address (IPv4, IPv6, or IPv4 inside IPv6) unless the allowlist names the host or the
address. :func:`check_url` judges a URL when the batch is created (its refusal is a
400); :func:`deliver` judges it again at every attempt, since DNS can change in between,
and connects to the very address it checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import random
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) to every address a connection to the host may reach."""

LONGEST_URL = 2048
SECRET_BYTES = 32
USER_AGENT = "Switchyard-Webhooks/1"
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: its addresses stand for the IPv4 address in their last
32 bits, and are judged as that address."""


class WebhookRefused(ValueError):
    """A webhook URL the gateway will not call; the message is meant for the caller."""


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives ``host``, through asyncio's getaddrinfo."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class WebhookPolicy:
    """Where webhooks may go and how hard the gateway tries; the caller fills it from the
    gateway's settings."""

    allow: frozenset[str] = frozenset()
    """Host names (exact, any port) and IP addresses or networks ("10.1.2.3",
    "10.0.0.0/8", "::1") that may be called over http, and at internal addresses."""
    attempts: int = 5
    timeout_s: float = 10.0
    """Per attempt: resolving, connecting, sending and reading the answer's status."""
    base_delay_s: float = 1.0
    """The wait after the first failed attempt; each next wait doubles, up to the max."""
    max_delay_s: float = 60.0
    resolve: Resolver = resolve_host
    """Injectable, for tests: a DNS answer without DNS."""
    tls: ssl.SSLContext | None = None
    """How receivers' certificates are verified; None: httpx's default (certifi's roots)."""

    def _networks(self) -> list[Network]:
        networks = []
        for entry in self.allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                continue  # a host name
        return networks

    def allows_address(self, address: Address) -> bool:
        judged = _embedded_ipv4(address)
        return any(address in net or judged in net for net in self._networks())

    def allows_host(self, url: httpx.URL) -> bool:
        """The URL's host itself is allowlisted: by its name, or as an allowed address."""
        names = {entry.strip().lower().rstrip(".") for entry in self.allow}
        if {url.host.rstrip("."), url.raw_host.decode("ascii").rstrip(".")} & names:
            return True
        literal = _literal(url.host)
        return literal is not None and self.allows_address(literal)


@dataclass(frozen=True)
class Delivery:
    """How a webhook went. :func:`deliver` returns one rather than raising, so a job's end
    never fails, nor waits past the policy's bounds, because of a bad receiver."""

    delivered: bool
    attempts: int
    status: int | None
    """The last answer's HTTP status; None when the last attempt got no answer."""
    error: str
    """Why the last attempt failed; "" when delivered."""
    webhook_id: str


def new_secret() -> str:
    """A new signing secret in the Standard Webhooks form, ``whsec_`` and base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def event_id(batch_id: str, status: str) -> str:
    """The ``webhook-id`` of a batch's end: the same at every attempt (and if the same end
    is sent again), so a receiver can drop what it already has."""
    digest = hashlib.sha256(f"{batch_id}\x00{status}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def backoff_s(
    attempt: int, policy: WebhookPolicy, draw: Callable[[], float] = random.random
) -> float:
    """The wait after failed attempt ``attempt`` (from 1): exponential and capped, half of
    it drawn at random so receivers that come back together are not hit in step."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + draw() * ceiling / 2


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour or address


def is_public(address: Address) -> bool:
    """Reachable on the public internet: none of loopback, link-local, private (RFC 1918,
    unique local, shared 100.64/10, documentation), reserved, multicast, unspecified."""
    judged = _embedded_ipv4(address)
    return judged.is_global and not (
        judged.is_loopback
        or judged.is_link_local
        or judged.is_private
        or judged.is_reserved
        or judged.is_multicast
        or judged.is_unspecified
    )


def _parse(url: str, policy: WebhookPolicy) -> httpx.URL:
    """The URL as httpx will send it (one parser for the check and the call, so no two
    readings of one string), refused unless its form may be called."""
    if len(url) > LONGEST_URL:
        raise WebhookRefused(f"webhook_url is longer than {LONGEST_URL} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        raise WebhookRefused(f"webhook_url is not a valid URL: {e}") from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookRefused("webhook_url must be an https URL")
    if not parsed.host:
        raise WebhookRefused("webhook_url has no host")
    if parsed.userinfo:
        raise WebhookRefused("webhook_url must not carry credentials")
    if parsed.scheme == "http" and not policy.allows_host(parsed):
        raise WebhookRefused("webhook_url must use https (http only to allowlisted hosts)")
    return parsed


async def _checked_addresses(url: httpx.URL, policy: WebhookPolicy) -> list[Address]:
    """Every address the URL's host is or resolves to, all of them allowed; resolving's
    own failures (OSError, TimeoutError) pass up."""
    literal = _literal(url.host)
    if literal is not None:
        addresses = [literal]
    else:
        port = url.port or (443 if url.scheme == "https" else 80)
        async with asyncio.timeout(policy.timeout_s):
            found = await policy.resolve(url.raw_host.decode("ascii"), port)
        addresses = [ipaddress.ip_address(a) for a in found]
        if not addresses:
            raise OSError(f"{url.host} has no address")
    if policy.allows_host(url):
        return addresses
    for address in addresses:
        if not is_public(address) and not policy.allows_address(address):
            raise WebhookRefused(
                f"webhook_url host {url.host} is or resolves to {address}, which is not a "
                "public address"
            )
    return addresses


async def check_url(url: str, policy: WebhookPolicy) -> str:
    """The URL, normalized, if the gateway may call it; else :class:`WebhookRefused`.
    For a batch's creation: a host that does not resolve is refused as well."""
    parsed = _parse(url, policy)
    try:
        await _checked_addresses(parsed, policy)
    except (OSError, TimeoutError):
        raise WebhookRefused(f"webhook_url host {parsed.host} does not resolve") from None
    return str(parsed)


async def _attempt(
    client: httpx.AsyncClient,
    url: httpx.URL,
    attempt: int,
    body: str,
    signer: Webhook,
    webhook_id: str,
    policy: WebhookPolicy,
) -> int:
    """One POST, to an address checked just now; the answer's status."""
    addresses = await _checked_addresses(url, policy)
    address = addresses[(attempt - 1) % len(addresses)]  # each attempt tries the next
    # Pinned: the request goes to the checked address itself, with the Host header and
    # the TLS server name (httpx's "sni_hostname" extension, so certificates are still
    # verified against the host name) of the original URL. No second lookup comes
    # between the check and the connect, so DNS rebinding has no window; and this needs
    # only httpx's public API, where a transport of our own would copy its internals.
    now = datetime.now(tz=UTC)
    request = client.build_request(
        "POST",
        url.copy_with(host=str(address)),
        content=body.encode(),
        headers={
            "Host": httpx.Request("POST", url).headers["Host"],
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(webhook_id, now, body),
        },
        extensions={"sni_hostname": url.raw_host.decode("ascii")},
    )
    response = await client.send(request, stream=True)
    await response.aclose()  # the body is never read: a receiver cannot make it large
    return response.status_code


async def deliver(
    url: str,
    batch: Mapping[str, Any],
    *,
    secret: str,
    webhook_id: str,
    policy: WebhookPolicy,
) -> Delivery:
    """POST ``batch`` as JSON to ``url``, signed with ``secret`` (``whsec_...``).

    Retried with backoff after a connection error, a timeout, a 429 or a 5xx, up to the
    policy's attempts; any other answer is final (a 3xx too: redirects are not followed,
    as a redirect could point anywhere). Each attempt is signed afresh with its own
    timestamp under the same ``webhook_id``. Retries are this small loop: no retry
    library is among the gateway's dependencies.
    """
    try:
        parsed = _parse(url, policy)
        signer = Webhook(secret)
        body = json.dumps(batch, separators=(",", ":"))
    except Exception as e:
        log.warning("webhook %s not sent: %s", webhook_id, e)
        return Delivery(False, 0, None, str(e), webhook_id)
    attempt, status, error = 0, None, ""
    async with httpx.AsyncClient(
        verify=policy.tls if policy.tls is not None else True,
        trust_env=False,  # an environment's proxy would be connected to, not the address
        follow_redirects=False,
        timeout=policy.timeout_s,
    ) as client:
        while attempt < policy.attempts:
            attempt += 1
            status, retry = None, True
            try:
                async with asyncio.timeout(policy.timeout_s):
                    status = await _attempt(
                        client, parsed, attempt, body, signer, webhook_id, policy
                    )
            except WebhookRefused as e:
                error, retry = str(e), False
            except TimeoutError:
                error = f"no answer within {policy.timeout_s} s"
            except (httpx.HTTPError, OSError) as e:
                error = f"{type(e).__name__}: {e}"
            except Exception as e:
                log.exception("webhook %s: unexpected failure", webhook_id)
                error, retry = f"{type(e).__name__}: {e}", False
            if status is not None:
                if 200 <= status < 300:
                    return Delivery(True, attempt, status, "", webhook_id)
                error, retry = f"answered {status}", status == 429 or status >= 500
            if not retry:
                break
            if attempt < policy.attempts:
                await asyncio.sleep(backoff_s(attempt, policy))
    log.warning(
        "webhook %s to %s failed after %d attempt(s): %s", webhook_id, parsed.host, attempt, error
    )
    return Delivery(False, attempt, status, error, webhook_id)
