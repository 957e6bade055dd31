"""Who is really asking: the client address and scheme behind a configured reverse proxy.

`X-Forwarded-For` and `X-Forwarded-Proto` are only believed when the peer that sent
them is listed in the `trusted_proxies` setting (IPs or CIDRs, comma-separated; empty by
default, so nobody is trusted, not even loopback: any local process could send them).
The login throttle keys on the resolved client, the session cookie gets `Secure` when
the resolved scheme is https, and a request that came through a proxy needs a login even
when Synapse itself listens on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Forwarded", "TrustedProxies", "from_settings"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The resolved origin of one request."""

    client: str
    scheme: str
    #: True when a trusted proxy forwarded it (it said so with X-Forwarded-For / -Proto).
    proxied: bool


class TrustedProxies:
    """The `trusted_proxies` setting, parsed once; `resolve()` runs on every request."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: tuple[_Network, ...] = tuple(_network(e) for e in entries if e.strip())

    @classmethod
    def parse(cls, value: object) -> "TrustedProxies":
        """From the setting: "10.0.0.1, 192.168.0.0/16" or a JSON list. ValueError says what to fix."""
        if value is None or value == "":
            return cls()
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            items = list(value)
        else:
            raise ValueError("trusted_proxies must be a comma-separated list of IP addresses or CIDRs, like 127.0.0.1, 10.0.0.0/8")
        return cls(items)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(host.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)

    def resolve(self, peer: str, scheme: str, forwarded_for: str | None, forwarded_proto: str | None) -> Forwarded:
        """The client and scheme of a request whose TCP peer is `peer`.

        From a trusted peer, X-Forwarded-For is read right to left and the first address
        that is not itself a trusted proxy is the client (the left part can be forged by
        the client, the right part was appended by proxies we trust).
        """
        if not (forwarded_for or forwarded_proto) or not self.trusts(peer):
            return Forwarded(peer, scheme, False)
        client = peer
        if forwarded_for:
            hops = [h.strip().strip('"') for h in forwarded_for.split(",") if h.strip()]
            for hop in reversed(hops):
                host = _strip_port(hop)
                if not _is_ip(host):
                    break  # garbage from the client side: stop at the last good hop
                client = host
                if not self.trusts(host):
                    break
        if forwarded_proto:
            proto = forwarded_proto.split(",")[0].strip().lower()
            if proto in ("http", "https"):
                scheme = proto
        return Forwarded(client, scheme, True)


def _network(entry: str) -> _Network:
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"trusted_proxies: {text[:60]!r} is not an IP address or CIDR (like 127.0.0.1 or 10.0.0.0/8)"
        ) from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _strip_port(hop: str) -> str:
    """`[::1]:443` -> `::1`, `10.0.0.1:5000` -> `10.0.0.1`, a bare IPv6 address unchanged."""
    if hop.startswith("["):
        return hop[1:].split("]", 1)[0]
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def from_settings() -> TrustedProxies:
    """The `trusted_proxies` setting; nobody is trusted while settings.json cannot be read
    (the pages say why). ValueError when the setting is malformed."""
    from ..errors import SettingsError
    from ..settings import load

    try:
        value = load().get("trusted_proxies")
    except SettingsError:
        return TrustedProxies()
    return TrustedProxies.parse(value)
