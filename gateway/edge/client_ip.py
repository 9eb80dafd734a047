"""The caller's address: the peer's, unless the peer is a trusted proxy, in which case the
nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy.

Anyone can write ``X-Forwarded-For``; only a proxy the operator named can be believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted: list[Network] = [
            ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies
        ]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def of(self, peer: str, forwarded_for: str | None) -> str:
        if not forwarded_for or not self._is_trusted(peer):
            return peer
        for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
            if hop and not self._is_trusted(hop):
                return hop
        return peer
