"""What an operator's tools ask the server (SPEC §7): ``/healthz``, ``/readyz`` and ``/metrics``.

All three are cheap, unauthenticated in the session sense (no cookie is read or set) and never
cached (``Cache-Control: no-store``):

- ``GET /healthz``: the process answers, ``200 {"status": "ok"}``; it touches neither the database
  nor the cache (a liveness probe must not restart a healthy process because Redis is away).
- ``GET /readyz``: the default database answers a trivial query and the cache a set/get round trip
  of a short-lived key: ``200 {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}``;
  otherwise ``503`` naming the part that failed (``"unavailable"``), with ``Retry-After``.
- ``GET /metrics``: Prometheus' text exposition (``identity.metrics``) when
  ``PORTCULLIS_METRICS_ENABLED`` is on (404 otherwise, as for any unknown URL), for a request that
  brings ``Authorization: Bearer <PORTCULLIS_METRICS_TOKEN>`` (compared in constant time) and/or
  comes from ``PORTCULLIS_METRICS_ALLOWED_IPS`` (addresses or networks; the client IP as
  ``identity.network.client_ip`` reads it), whichever are set: both when both are. With neither
  set every request is refused (system check ``identity.W021``).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Iterable

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from identity import metrics as metrics_module
from identity.app_settings import setting
from identity.network import client_ip

logger = logging.getLogger("portcullis.operations")

RETRY_AFTER = 5  # seconds a load balancer should wait before asking /readyz again
READY_KEY = "portcullis:readyz:" + secrets.token_hex(8)  # one key per process, expiring by itself
NO_STORE = {"Cache-Control": "no-store"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"}, headers=NO_STORE)


def database_answers() -> bool:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001  any failure of the database is "unavailable", never a 500
        logger.warning("readyz: the database does not answer (%s)", type(error).__name__)
        return False
    return True


def cache_answers() -> bool:
    value = secrets.token_hex(8)
    try:
        cache.set(READY_KEY, value, timeout=10)
        answered = cache.get(READY_KEY) == value
    except Exception as error:  # noqa: BLE001  any failure of the cache is "unavailable", never a 500
        logger.warning("readyz: the cache does not answer (%s)", type(error).__name__)
        return False
    if not answered:
        logger.warning("readyz: the cache did not keep a value")
    return answered


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    checks = {"database": database_answers(), "cache": cache_answers()}
    body = {name: "ok" if ok else "unavailable" for name, ok in checks.items()}
    if all(checks.values()):
        return JsonResponse({"status": "ready", "checks": body}, headers=NO_STORE)
    return JsonResponse({"status": "unavailable", "checks": body}, status=503,
                        headers={**NO_STORE, "Retry-After": str(RETRY_AFTER)})


# -- /metrics ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # reported by system check identity.E020
    return tuple(networks)


def allowed_networks() -> tuple[Network, ...] | None:
    """The parsed ``PORTCULLIS_METRICS_ALLOWED_IPS``, or None when it is not set."""
    value: object = setting("METRICS_ALLOWED_IPS", [])
    items: Iterable[object] = value.split(",") if isinstance(value, str) else value if isinstance(value, Iterable) else ()
    entries = tuple(str(item) for item in items if str(item).strip())
    return _networks(entries) if entries else None


def _error(kind: str, code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({kind: {"code": code, "message": message}}, status=status, headers=NO_STORE)


def _bearer(request: HttpRequest) -> str:
    scheme, _space, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_module.enabled():
        raise Http404
    token = str(setting("METRICS_TOKEN", "") or "")
    networks = allowed_networks()
    if not token and networks is None:
        return _error("forbidden", "metrics_unprotected", _("Metrics are on, but neither a token nor allowed "
                                                             "addresses are set."), 403)
    if networks is not None:
        address = client_ip(request)
        if address is None or not any(ipaddress.ip_address(address) in network for network in networks):
            return _error("forbidden", "ip_denied", _("Metrics may not be read from this address."), 403)
    if token and not hmac.compare_digest(_bearer(request).encode(), token.encode()):
        response = _error("key", "invalid_token", _("Metrics need the bearer token."), 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics_module.exposition()
    return HttpResponse(body, content_type=content_type, headers=NO_STORE)
