"""Where a webhook may send: http(s) to public addresses only, unless told otherwise.

A webhook URL is chosen by whoever holds the admin password, but the requests
leave from inside the operator's network: without this guard a URL could reach
the database, a cloud metadata endpoint or an admin page on loopback (SSRF).
The check runs when a webhook is created and again before every attempt, on
the addresses the name resolves to then, and the attempt connects to the very
address that was checked, so a DNS answer that changes in between (rebinding)
cannot slip through.
"""

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class RefusedDestination(Exception):
    """The URL is not one the service will send to; the message says why."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # as written in the URL (the TLS name and the Host header)
    port: int
    target: str  # path and query
    address: str  # the checked IP address to connect to


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path and query) of an http(s) URL, or RefusedDestination."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedDestination(f"The URL is not valid: {error}.") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedDestination("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise RefusedDestination("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise RefusedDestination("The URL must not hold credentials.")
    if parts.fragment:
        raise RefusedDestination("The URL must not have a #fragment.")
    port = port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


class Unresolved(RefusedDestination):
    """The host name does not resolve (now)."""


def check(url: str, allow_private: bool) -> None:
    """At creation: refuse a bad URL or one that resolves to a non-public address. A
    name that does not resolve yet is let through: nothing is sent until an
    attempt resolves it, and each attempt checks again."""
    with contextlib.suppress(Unresolved):
        resolve(url, allow_private)


def resolve(url: str, allow_private: bool) -> Destination:
    """The URL's destination, resolved now; refused unless every address is public."""
    scheme, host, port, target = parse(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Unresolved(f"The host {host!r} does not resolve: {error}.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise RefusedDestination(
                    f"The host {host!r} resolves to {address}, which is not a public address"
                    " (loopback, private, link-local, multicast or reserved)."
                )
    return Destination(scheme, host, port, target, addresses[0])


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return ip.is_global and not ip.is_multicast
