"""Who is calling: the client's IP address for the audit trail, and a request id worth keeping.

``X-Forwarded-For`` is whatever the client wrote, unless a proxy we run wrote it. So it is read only
when the TCP peer is one of the configured trusted proxies (``AITRADEX_TRUSTED_PROXIES``, none by
default). Then the list is walked from the right, the end our proxies append to, skipping our own
proxies; the first address that is not one of them is the client. Anything malformed stops the walk
at the last address a trusted hop vouched for. With no trusted proxy, the peer's own address is used.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Sequence

from lib.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# More hops than any real chain of proxies; a longer header is not walked further.
MAX_HOPS = 16
MAX_USER_AGENT_CHARS = 256
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]) -> str | None:
    """The caller's IP address: the peer's, or what trusted proxies say in ``X-Forwarded-For``.

    ``forwarded_for``: every ``X-Forwarded-For`` header value, in the order received. None when the
    peer is unknown (not a TCP connection).
    """
    current = _address(peer) if peer else None
    if current is None:
        return None
    if not proxies or not _trusted(current, proxies):
        return str(current)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops[-MAX_HOPS:]):
        address = _address(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, proxies):
            break
    return str(current)


def user_agent(value: str) -> str:
    """The user agent, cut to a length worth storing in the audit trail."""
    return value[:MAX_USER_AGENT_CHARS]


def request_id(incoming: str) -> str:
    """The client's ``X-Request-Id`` if it is a plain token of 8-64 characters, else a new one."""
    return incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
