"""Outbound HTTP to upstream identity providers, without server-side request forgery.

SPEC §4's issuer rule, for every URL we fetch (discovery, JWKS, token, userinfo, user APIs):

- ``https`` only; ``http`` only to a loopback host while ``DEBUG`` is on or
  ``PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS`` is set;
- the host is resolved and every address it resolves to is checked: loopback addresses only under
  the same condition, private, link-local (169.254.169.254, the cloud metadata service), reserved,
  multicast and unspecified addresses only with the setting;
- the connection goes to the address that was checked (no second resolution a DNS rebinding
  could change), the TLS certificate is checked against the host name; redirects are not followed;
  every request has a timeout (``PORTCULLIS_OIDC_HTTP_TIMEOUT``, 5 s) and a size limit.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from identity.app_settings import setting

MAX_BODY = 1024 * 1024
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """The URL breaks the issuer rule; ``message`` says why (for the admin's form)."""

    def __init__(self, message: Any) -> None:
        self.message = message
        super().__init__(str(message))


class UpstreamUnavailable(Exception):
    """The upstream could not be reached, or answered something we cannot use (``reason`` for the
    audit log; never a secret)."""

    def __init__(self, reason: str, status: int = 0, body: Any = None) -> None:
        self.reason = reason
        self.status = status
        self.body = body
        super().__init__(reason)


def insecure_allowed() -> bool:
    """``PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS``: http loopback and private addresses (tests, labs)."""
    return bool(setting("OIDC_ALLOW_INSECURE_ISSUERS", False))


def timeout() -> float:
    return float(setting("OIDC_HTTP_TIMEOUT", 5))


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_refusal(address: Address) -> Any:
    """Why the issuer rule refuses to connect to ``address`` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if (insecure_allowed() or settings.DEBUG) else _("Loopback addresses are not allowed.")
    if address.is_global and not address.is_multicast:
        return None
    if insecure_allowed():
        return None
    return _("Private, link-local and reserved addresses are not allowed.")


def check_url(url: str, *, resolve: bool = True) -> list[Address]:
    """The addresses of ``url``'s host that the issuer rule allows, or :class:`UrlRefused`.

    ``resolve=False`` (the settings form, where the host may not resolve yet) checks what the URL
    itself says and resolves only when it can; a request always resolves."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused(_("Enter a valid URL.")) from None
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise UrlRefused(_("Enter an https URL without user name or password."))
    literal = _literal(host)
    loopback_name = host in LOOPBACK_NAMES or host.endswith(".localhost")
    if parts.scheme == "http":
        loopback = loopback_name or (literal is not None and literal.is_loopback)
        if not loopback or not (settings.DEBUG or insecure_allowed()):
            raise UrlRefused(_("The URL must use https (http only on this machine while DEBUG is on)."))
    if loopback_name and not (settings.DEBUG or insecure_allowed()):
        raise UrlRefused(_("Loopback addresses are not allowed."))
    try:
        addresses = [literal] if literal is not None else _resolve(host, port or 443)
    except OSError:
        if resolve:
            raise UrlRefused(_("The host name could not be resolved.")) from None
        return []
    for address in addresses:
        refusal = address_refusal(address)
        if refusal:
            raise UrlRefused(refusal)
    return addresses


def _resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError("no address")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header keeps the name."""

    def __init__(self, host: str, port: int | None, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        """The body as JSON, or :class:`UpstreamUnavailable` (``bad_json``)."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise UpstreamUnavailable("bad_json", self.status) from None


def request(method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    """One HTTP exchange under the issuer rule; :class:`UrlRefused` or :class:`UpstreamUnavailable`
    (``unreachable``, ``too_large``) when it cannot be made. Any status is answered."""
    addresses = check_url(url)
    parts = urlsplit(url)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, address=str(addresses[0]), timeout=timeout())
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    all_headers = {"Accept": "application/json", "User-Agent": "Portcullis", **(headers or {})}
    try:
        connection.request(method, path, body=data, headers=all_headers)
        answer = connection.getresponse()
        body = answer.read(MAX_BODY + 1)
    except (OSError, http.client.HTTPException):
        raise UpstreamUnavailable("unreachable") from None
    finally:
        connection.close()
    if len(body) > MAX_BODY:
        raise UpstreamUnavailable("too_large", answer.status)
    return Response(answer.status, body, answer.getheader("Content-Type", "") or "")


def get_json(url: str, *, headers: dict[str, str] | None = None) -> Any:
    """GET a JSON document that must answer 200."""
    response = request("GET", url, headers=headers)
    if response.status != 200:
        raise UpstreamUnavailable("bad_status", response.status)
    return response.json()
