"""Sandbox egress by allowlist: which host names and ports a grant covers, and which resolved addresses are never
reachable (loopback, private, link-local, multicast, unspecified, reserved, cloud metadata). Pure: no I/O."""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
DEFAULT_PORTS = (80, 443)

# Cloud metadata endpoints, named so a refusal says what it protected (most are also caught as non-global).
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "100.100.100.200", "192.0.0.192", "fd00:ec2::254",
    "fd00:ec2::23"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


class HostGrant(BaseModel):
    """One granted destination: an exact host name (or IP literal) and the ports allowed on it."""

    model_config = ConfigDict(frozen=True)

    host: str
    ports: tuple[int, ...] = DEFAULT_PORTS


class EgressAttempt(BaseModel):
    """One connection the sandbox asked the egress proxy for."""

    host: str = Field(max_length=260)
    port: int
    allowed: bool
    reason: str = Field(max_length=300)
    address: str | None = Field(default=None, description="the resolved address connected to (or refused)")


def normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def parse_grant(text: str) -> HostGrant:
    """`host` (ports 80 and 443) or `host:port`; `[v6]:port` for IPv6 literals. ValueError when malformed."""
    raw = text.strip()
    port: int | None = None
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"network host {text!r}: unclosed [")
        host, rest = raw[1:end], raw[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"network host {text!r}: expected [v6]:port")
            port = _port(rest[1:], text)
    elif raw.count(":") == 1:
        host, p = raw.split(":")
        port = _port(p, text)
    else:
        host = raw
    host = normalize_host(host)
    if not host:
        raise ValueError(f"network host {text!r}: empty")
    if not _is_ip(host) and not _HOSTNAME.match(host):
        raise ValueError(f"network host {text!r}: not a host name (letters, digits, dots, hyphens)")
    return HostGrant(host=host, ports=(port,) if port is not None else DEFAULT_PORTS)


def parse_grants(hosts: list[str] | tuple[str, ...]) -> list[HostGrant]:
    merged: dict[str, set[int]] = {}
    for h in hosts:
        g = parse_grant(h)
        merged.setdefault(g.host, set()).update(g.ports)
    return [HostGrant(host=h, ports=tuple(sorted(p))) for h, p in merged.items()]


def granted(grants: list[HostGrant], host: str, port: int) -> str | None:
    """None when (host, port) is granted; else why not."""
    host = normalize_host(host)
    for g in grants:
        if g.host == host:
            return None if port in g.ports else f"port {port} is not granted for {host} (granted: " \
                                                 f"{', '.join(map(str, g.ports))})"
    return f"{host} is not a granted host"


def forbidden_reason(address: str) -> str | None:
    """None when `address` is a public unicast address; else which kind of address it is (never connected to)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return f"not an IP address: {address!r}"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = forbidden_reason(str(embedded))
            return f"{inner} (embedded in {ip})" if inner else None
    if ip in METADATA:
        return "cloud metadata address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT) address"
    if ip.is_reserved:
        return "reserved address"
    if any(ip in net for net in _PRIVATE if net.version == ip.version):
        return "private address"
    if ip.is_private or not ip.is_global:
        return "non-global address (documentation, benchmarking, protocol assignments, ...)"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"network host {whole!r}: port must be 1-65535")
    return int(text)
