"""Where a request comes from: the client's IP address and region, as every part of Portcullis
reads them (audit events, risk counters, known devices, access rules).

Behind a reverse proxy the socket address (``REMOTE_ADDR``) is the proxy's. The proxy's own header
is believed only when a setting names it, since any client can send ``X-Forwarded-For``:

- ``PORTCULLIS_TRUSTED_PROXY_HEADER`` (e.g. ``X-Forwarded-For``): the client IP is the header's
  **last** address, the one the trusted proxy appended (the ones before it are whatever the client
  sent). Without the header the socket address counts; a malformed last address is unknown (None).
  Unset: the socket address, whatever headers the client sends.
- ``PORTCULLIS_REGION_HEADER`` (e.g. ``CF-IPCountry``): the region the proxy names, an ISO 3166-1
  alpha-2 code (or Cloudflare's ``XX`` / ``T1``); anything else is unknown (None). Unset: unknown.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from django.http import HttpRequest

from identity.app_settings import app_settings

_REGION = re.compile(r"[A-Z][A-Z0-9]\Z")


def meta_key(header: str) -> str:
    """The ``request.META`` key of an HTTP header name (``X-Forwarded-For`` -> ``HTTP_X_FORWARDED_FOR``)."""
    key = header.strip().upper().replace("-", "_")
    return key if key.startswith("HTTP_") else f"HTTP_{key}"


@functools.lru_cache(maxsize=4096)  # a few addresses come back all the time (proxies, busy clients)
def parse_address(value: str) -> str | None:
    """``value`` as a normalised IP address (an IPv4-mapped IPv6 address as IPv4; a port or brackets
    a proxy may add are dropped), or None when it is none."""
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # 203.0.113.7:51234
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value.partition("%")[0])  # no zone index (fe80::1%eth0)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address (see the module's docstring), or None when unknown."""
    header = app_settings.TRUSTED_PROXY_HEADER
    if header:
        forwarded = request.META.get(meta_key(header))
        if isinstance(forwarded, str) and forwarded.strip():
            return parse_address(forwarded.rsplit(",", 1)[-1])
    remote = request.META.get("REMOTE_ADDR")
    return parse_address(remote) if isinstance(remote, str) and remote else None


def client_region(request: HttpRequest) -> str | None:
    """The client's region from the proxy's header (upper case), or None when unknown or unset."""
    header = app_settings.REGION_HEADER
    if not header:
        return None
    value = request.META.get(meta_key(header))
    region = value.strip().upper() if isinstance(value, str) else ""
    return region if _REGION.match(region) else None
