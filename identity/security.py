"""Headers every page of the sign-in flow carries.

The Content-Security-Policy of the hosted pages:

- ``default-src 'self'``, ``img-src 'self' data:``, ``object-src 'none'``, ``base-uri 'self'``;
- ``script-src 'none'``: the pages use no JavaScript;
- ``style-src 'self'`` plus the SHA-256 hash of each inline ``<style>`` element of this very response,
  computed when the header is set, so that styles rendered per application (branding colours,
  custom CSS) are allowed as they are rendered and nothing else inline is;
- ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY``): no site may frame these pages;
- ``form-action 'self'`` plus the origins of the pages a form's answer may redirect to: browsers
  apply ``form-action`` to the redirects that follow a form's POST, and the sign-in, consent and
  sign-out forms end in a redirect to the client (its redirect URI or post-logout redirect URI).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.http import HttpResponseBase

R = TypeVar("R", bound=HttpResponseBase)

STYLE_ELEMENT = re.compile(rb"<style\b[^>]*>(.*?)</style", re.IGNORECASE | re.DOTALL)
HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")
SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
UNSAFE_SCHEMES = {"javascript", "vbscript", "data", "blob", "filesystem", "about", "file"}


def deny_framing(response: R, form_action: Iterable[str] = ()) -> R:
    """No site may frame sign-in, consent, code or error pages (clickjacking); the page's CSP.

    ``form_action``: URIs a form of this page may end up at through redirects (their origins are
    allowed beside this site's); see :func:`client_targets`."""
    response["X-Frame-Options"] = "DENY"
    policy = response.get("Content-Security-Policy")
    if not policy:
        response["Content-Security-Policy"] = content_security_policy(response, form_action)
    response["Referrer-Policy"] = "same-origin"  # no-referrer would make browsers send Origin: null, failing CSRF
    return response


def content_security_policy(response: HttpResponseBase, form_action: Iterable[str] = ()) -> str:
    styles = "".join(f" {source}" for source in inline_style_hashes(response))
    sources = {source for source in map(source_of, form_action) if source is not None}
    targets = "".join(f" {source}" for source in sorted(sources))
    return (f"default-src 'self'; script-src 'none'; style-src 'self'{styles}; img-src 'self' data:; "
            f"frame-ancestors 'none'; form-action 'self'{targets}; base-uri 'self'; object-src 'none'")


def inline_style_hashes(response: HttpResponseBase) -> list[str]:
    """``'sha256-…'`` of each ``<style>`` element's text in an HTML response, as a browser sees it."""
    if getattr(response, "streaming", True) or not response.get("Content-Type", "").startswith("text/html"):
        return []
    hashes = []
    for text in STYLE_ELEMENT.findall(response.content):  # type: ignore[attr-defined]
        text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # the HTML parser's newline normalisation
        hashes.append("'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode() + "'")
    return list(dict.fromkeys(hashes))


def source_of(uri: str) -> str | None:
    """The CSP source that matches ``uri``'s origin: ``https://host:port``, or ``scheme:`` for an
    app's private-use scheme and for hosts a CSP source cannot name (IPv6 literals); None when the
    URI has no usable scheme."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not SCHEME.fullmatch(scheme) or scheme in UNSAFE_SCHEMES:
        return None
    host = parts.hostname or ""
    if scheme not in ("http", "https") or ":" in host:
        return f"{scheme}:"
    if not HOST.fullmatch(host):
        return None  # nothing a browser could be sent to; never a way to write into the header
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def client_targets(application: Any, redirect_uri: str = "") -> list[str]:
    """Where a form of a page serving this application's authorization request may end up: its
    registered redirect URIs, and the request's own when it matches one (a loopback URI's port may
    differ from the registered one)."""
    from identity.validators import redirect_uri_registered

    targets = str(application.redirect_uris or "").split()
    if redirect_uri and redirect_uri not in targets and redirect_uri_registered(application, redirect_uri):
        targets.append(redirect_uri)
    return targets
