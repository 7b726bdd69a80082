"""Cross-origin requests from browser applications (single-page apps) to the OAuth endpoints.

The rule, in one place (docs/configuration.md, "Browser applications"):

- Discovery and JWKS are public documents: ``Access-Control-Allow-Origin: *`` for every origin,
  their preflight (``OPTIONS``) included. Nothing there depends on cookies, so no credentials.
- Token, userinfo, revocation and introspection answer an origin only when it is one of the
  ``allowed_origins`` registered (whitespace-separated) on the application the request concerns:
  the client named by HTTP Basic or ``client_id`` in the body (token, revocation, introspection),
  the client the access token was issued to (userinfo). Errors included, so the application can
  read them. A request that concerns no known application (an unknown ``client_id`` or token)
  reveals nothing: it is answered for an origin registered by any application, like the preflight.
  Basic and body naming two different clients are answered for nobody.
- The preflight carries no credentials, so it cannot say which application it is for: it is
  answered for an origin registered by any application, allowing ``Authorization`` and
  ``Content-Type``; the actual request is then judged by the rule above.
- Origins follow the rule of redirect URIs (identity.validators.redirect_uri_registered): ``https``,
  or plain ``http`` only for the loopback hosts ``127.0.0.1``, ``[::1]`` and ``localhost``; a
  registered loopback IP origin (``http://127.0.0.1``, ``http://[::1]``) matches any port. A saved
  origin that breaks the rule (``http://app.example.com``, a path, a wildcard) matches nothing.
- The headless JSON APIs of first-party applications (``/api/auth/*``, ``/api/authorization/*``:
  experience.api.auth_views) follow the same rule, the application being the one named by HTTP
  Basic, the JSON body's ``client_id`` or the query's ``client_id``, or the bearer token's client; a
  step that names no application (``check-code`` with only its ``data_2fa``) is answered for an
  origin registered by any application. Their preflight also allows the ``X-Authenticator`` header.
- ``Access-Control-Allow-Credentials`` is never sent: the endpoints take credentials in headers and
  bodies, never from cookies, so a browser application calls them with ``credentials: "omit"`` or
  the default ``"same-origin"``. Every answer of these endpoints carries ``Vary: Origin``.

An Origin header that is not a well-formed origin (``null``, garbage, over 255 characters) gets no
CORS headers at all.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.http.request import RawPostDataException
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext

from identity import applications, validators
from identity.middleware import UNREADABLE

ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = "WWW-Authenticate, Retry-After"  # what a browser application may read of an answer
JSON_CONCERN_MAX_BODY = 16 * 1024  # bytes of a JSON body read to find its client_id (the APIs' bodies are small)
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer
MAX_ORIGIN_LENGTH = 255
# The redirect URIs' loopback hosts, as an Origin header writes them (an IPv6 literal in brackets).
LOOPBACK_HOSTS = frozenset(f"[{host}]" if ":" in host else host for host in validators.LOOPBACK_HOSTS)
ANY_PORT_HOSTS = frozenset({"127.0.0.1", "[::1]"})  # loopback IPs: the port may vary (RFC 8252 7.3)
DEFAULT_PORTS = {"https": 443, "http": 80}
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?")

# The origins of all applications, for the preflight: kept per process under a version number that
# lives in the shared cache (as identity.keys does), moved whenever an application is saved or
# deleted; a process looks at the version at most every CHECK_SECONDS and rebuilds at least every
# MAX_AGE_SECONDS (a queryset .update() sends no signal).
VERSION_KEY = "portcullis:cors-origins:version"
CHECK_SECONDS = 2.0
MAX_AGE_SECONDS = 60.0


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"

    def matches(self, registered: Origin) -> bool:
        if (self.scheme, self.host) != (registered.scheme, registered.host):
            return False
        return self.port == registered.port or self.any_port

    @property
    def any_port(self) -> bool:
        return self.scheme == "http" and self.host in ANY_PORT_HOSTS


def parse_origin(value: str | None) -> Origin | None:
    """The origin a browser sent (``scheme://host[:port]``), or None when it is not a usable one:
    missing, ``null``, malformed, too long, or plain ``http`` to anything but this machine."""
    if not value or len(value) > MAX_ORIGIN_LENGTH or not value.isascii():
        return None
    match = _ORIGIN.fullmatch(value.lower())
    if match is None:
        return None
    scheme, host = match["scheme"], match["host"]
    port = int(match["port"]) if match["port"] else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536 or (scheme == "http" and host not in LOOPBACK_HOSTS):
        return None
    return Origin(scheme, host, port)


@functools.lru_cache(maxsize=512)
def registered_origins(allowed_origins: str) -> tuple[Origin, ...]:
    """The usable origins of an application's ``allowed_origins`` field (a trailing ``/`` is
    forgiven; anything else that is not an origin is ignored)."""
    parsed = (parse_origin(entry[:-1] if entry.endswith("/") else entry) for entry in allowed_origins.split())
    return tuple(origin for origin in parsed if origin is not None)


def unusable_origins(allowed_origins: str) -> list[str]:
    """The entries of an ``allowed_origins`` value that match nothing under the rule: what a form
    should refuse with a field error rather than save."""
    return [entry for entry in allowed_origins.split() if not registered_origins(entry)]


def validate_allowed_origin(origin: str) -> str | None:
    """Why an allowed (CORS) origin can never match a browser's ``Origin`` header; None when it can.

    An origin is ``scheme://host[:port]`` (no path; a trailing slash, upper case and a default port
    do no harm): https, or plain http for a loopback host, as for redirect URIs.
    """
    if not isinstance(origin, str) or not origin or any(char.isspace() or ord(char) < 32 for char in origin):
        return gettext("Enter one origin per line.")
    if validators._JOINED.search(origin):
        return gettext("Put one origin per line: this looks like several origins joined by commas.")
    if "*" in origin:
        return gettext("Wildcards are not supported: register each origin exactly.")
    if not origin.isascii():
        return gettext("Write the host in its ASCII form (xn--…), as browsers send it.")
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return gettext("This is not a valid origin.")
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return gettext("An origin is scheme://host[:port], like https://app.example.com.")
    if port == 0 or not validators._ORIGIN_HOST.fullmatch(host):
        return gettext("This is not a valid origin.")
    if scheme == "http" and host not in validators.LOOPBACK_HOSTS:
        return gettext("Plain http is allowed only for 127.0.0.1, [::1] and localhost; use https.")
    if "@" in parts.netloc or parts.path not in ("", "/") or "?" in origin or "#" in origin:
        return gettext("An origin is only scheme://host[:port], without a path or a query.")
    if not registered_origins(origin):  # the rule the CORS answers apply (one parser: this module's)
        return gettext("This is not a valid origin.")
    return None


def allowed_for(application: Any, origin: Origin) -> bool:
    return any(origin.matches(registered) for registered in registered_origins(application.allowed_origins or ""))


# -- every application's origins (the preflight) ---------------------------------------------------
@dataclass(frozen=True)
class _Registry:
    version: str
    built_at: float
    exact: frozenset[Origin]
    any_port: frozenset[tuple[str, str]]

    def allows(self, origin: Origin) -> bool:
        return origin in self.exact or (origin.any_port and (origin.scheme, origin.host) in self.any_port)


_memo: _Registry | None = None
_checked_at = 0.0
_lock = threading.Lock()


def _version() -> str:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, str(timezone.now().timestamp()), None)
        version = cache.get(VERSION_KEY, "")
    return str(version)


def origins_changed() -> None:
    """An application's origins may have changed: every process rebuilds (this one at once)."""
    global _memo
    cache.set(VERSION_KEY, str(timezone.now().timestamp()), None)
    _memo = None


def _build(version: str) -> _Registry:
    Application = applications.Application
    texts: Iterable[str] = Application.objects.exclude(allowed_origins="").values_list("allowed_origins", flat=True)
    origins = {origin for text in texts for origin in registered_origins(text)}
    any_port = {(origin.scheme, origin.host) for origin in origins if origin.any_port}
    return _Registry(version, time.monotonic(), frozenset(origins), frozenset(any_port))


def allowed_by_any(origin: Origin) -> bool:
    """Whether some application registered this origin (one cache read every few seconds)."""
    global _memo, _checked_at
    memo, now = _memo, time.monotonic()
    if memo is not None and now - _checked_at < CHECK_SECONDS and now - memo.built_at < MAX_AGE_SECONDS:
        return memo.allows(origin)
    version = _version()
    _checked_at = now
    if memo is None or memo.version != version or now - memo.built_at >= MAX_AGE_SECONDS:
        with _lock:
            memo = _memo = _build(version)
    return memo.allows(origin)


# -- what a request concerns ---------------------------------------------------------------------
@dataclass
class Concern:
    """The application a request is about (None: no known one), and how the view may reuse the
    rows found for it (so that CORS costs no extra query)."""

    application: Any | None = None
    ambiguous: bool = False
    preload: AbstractContextManager[Any] = field(default_factory=nullcontext)

    def allows(self, origin: Origin) -> bool:
        if self.ambiguous:
            return False
        if self.application is None:
            return allowed_by_any(origin)
        return allowed_for(self.application, origin)


def _form_value(request: HttpRequest, name: str) -> str:
    if request.method != "POST":
        return ""
    try:
        return str(request.POST.get(name) or "")
    except UNREADABLE:  # the view answers invalid_request
        return ""


def _basic_client_id(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""
    client_id, colon, _secret = decoded.partition(":")
    return unquote_plus(client_id) if colon else ""


def client_of_credentials(request: HttpRequest) -> Concern:
    """Token, revocation, introspection: the client named by HTTP Basic or ``client_id``."""
    basic, posted = _basic_client_id(request), _form_value(request, "client_id")
    if basic and posted and basic != posted:
        return Concern(ambiguous=True)
    application = applications.load_application(basic or posted)
    if application is None:
        return Concern()
    return Concern(application, preload=validators.preloaded_application(application))


def _json_client_id(request: HttpRequest) -> str:
    if request.method != "POST" or request.content_type != "application/json":
        return ""
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > JSON_CONCERN_MAX_BODY:
            return ""
        body = json.loads(request.body)
    except (ValueError, RawPostDataException, *UNREADABLE):  # the view answers the bad body
        return ""
    client_id = body.get("client_id") if isinstance(body, dict) else None
    return client_id if isinstance(client_id, str) else ""


def client_of_api_call(request: HttpRequest) -> Concern:
    """The headless JSON APIs: the bearer token's client, else the client named by HTTP Basic, the
    JSON body's or the query's ``client_id``."""
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    if scheme == "bearer":
        return client_of_bearer(request)
    basic, named = _basic_client_id(request), _json_client_id(request) or str(request.GET.get("client_id") or "")
    if basic and named and basic != named:
        return Concern(ambiguous=True)
    application = applications.load_application(basic or named) if basic or named else None
    if application is None:
        return Concern()
    return Concern(application, preload=validators.preloaded_application(application))


def client_of_bearer(request: HttpRequest) -> Concern:
    """Userinfo: the client the access token (header, or form body) was issued to."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else _form_value(request, "access_token")
    access_token = validators.load_access_token(token)
    preload = validators.preloaded_access_token(token, access_token)
    return Concern(access_token.application if access_token is not None else None, preload=preload)


# -- responses -----------------------------------------------------------------------------------
def _preflight(allow_origin: str, methods: str, headers: str = ALLOWED_HEADERS) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Origin"] = allow_origin
    response["Access-Control-Allow-Methods"] = methods
    response["Access-Control-Allow-Headers"] = headers
    response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response


def _is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


View = Callable[..., HttpResponseBase]


def for_clients(concern: Callable[[HttpRequest], Concern], methods: str,
                headers: str = ALLOWED_HEADERS) -> Callable[[View], View]:
    """Decorate an endpoint's ``dispatch`` with the rule above. ``concern`` finds the application a
    request is about; ``methods`` and ``headers`` are what the preflight allows."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            origin = parse_origin(request.headers.get("Origin"))
            if origin is not None and _is_preflight(request) and allowed_by_any(origin):
                response: HttpResponseBase = _preflight(str(origin), methods, headers)
            elif origin is None or request.method == "OPTIONS":
                response = view(request, *args, **kwargs)
                response.headers.pop("Access-Control-Allow-Origin", None)
            else:
                found = concern(request)
                with found.preload:
                    response = view(request, *args, **kwargs)
                response.headers.pop("Access-Control-Allow-Origin", None)  # oauthlib's, for https only
                if found.allows(origin):
                    response["Access-Control-Allow-Origin"] = str(origin)
                    response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            patch_vary_headers(response, ("Origin",))
            return response

        return wrapper

    return decorator


def public(view: View) -> View:
    """Decorate a public document's ``dispatch`` (discovery, JWKS): any origin may read it."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = _preflight("*", "GET") if _is_preflight(request) else view(request, *args, **kwargs)
        response["Access-Control-Allow-Origin"] = "*"
        return response

    return wrapper
