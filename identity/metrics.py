"""Prometheus metrics (``/metrics``, ``identity.operations.metrics``): off unless
``PORTCULLIS_METRICS_ENABLED`` is on and ``prometheus_client`` is installed (the ``serve`` extra).

The apps count through the functions here, each a no-op while metrics are off; the experience app
calls them where the events happen (``experience.audit.record``: sign-in outcomes and lockouts;
``authenticators.base.CodeAuth.send_code``: codes; ``identity.validators``: tokens).
:class:`MetricsMiddleware` counts requests; it removes itself from the chain
(``MiddlewareNotUsed``) when metrics are off, so it costs nothing then.

Labels are bounded: an endpoint is its URL name (``identity:token``) or ``unmatched``, never a
path; a method outside the usual ones is ``other``; a status is its class (``2xx``).

Several gunicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, before the server
starts) and every worker writes its values there; ``/metrics`` then adds them up
(``prometheus_client.multiprocess``; ``config/gunicorn.conf.py`` clears the directory at start and
marks a dead worker's files).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from identity.app_settings import setting

try:
    import prometheus_client
except ImportError:  # pragma: no cover  (the serve and dev extras install it)
    prometheus_client = None  # type: ignore[assignment]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def available() -> bool:
    """Whether ``prometheus_client`` can be imported."""
    return prometheus_client is not None


def enabled() -> bool:
    """Whether metrics are on (the setting) and can be collected (the library)."""
    return prometheus_client is not None and bool(setting("METRICS_ENABLED", False))


def multiprocess_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` (the library's own variable), or "" in one process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "") or os.environ.get("prometheus_multiproc_dir", "")


@dataclass(frozen=True)
class Collectors:
    requests: Any
    latency: Any
    sign_ins: Any
    codes_sent: Any
    lockouts: Any
    tokens_issued: Any


_collectors: Collectors | None = None
_lock = threading.Lock()


def collectors() -> Collectors:
    """The metrics, registered in prometheus_client's default registry on first use."""
    global _collectors
    if _collectors is None:
        with _lock:
            if _collectors is None:
                client: Any = prometheus_client
                _collectors = Collectors(
                    requests=client.Counter("portcullis_http_requests", "HTTP requests answered, by endpoint "
                                            "(URL name), method and status class.", ["endpoint", "method", "status"]),
                    latency=client.Histogram("portcullis_http_request_duration_seconds", "Time to answer a "
                                             "request, by endpoint (URL name) and method.", ["endpoint", "method"],
                                             buckets=LATENCY_BUCKETS),
                    sign_ins=client.Counter("portcullis_sign_ins", "Sign-in steps by outcome (succeeded, failed, "
                                            "code_failed, second_factor_failed) and method (the authenticator).",
                                            ["outcome", "method"]),
                    codes_sent=client.Counter("portcullis_codes_sent", "One-time codes delivered, by channel.",
                                              ["channel"]),
                    lockouts=client.Counter("portcullis_lockouts", "Accounts locked after too many failures."),
                    tokens_issued=client.Counter("portcullis_tokens_issued", "Token responses issued, by grant "
                                                 "type.", ["grant_type"]),
                )
    return _collectors


# -- what the apps count -------------------------------------------------------------------------------
def sign_in(outcome: str, method: str) -> None:
    """A sign-in step: ``outcome`` one of succeeded, failed, code_failed, second_factor_failed;
    ``method`` the authenticator's name (an existing one: the callers resolved it)."""
    if enabled():
        collectors().sign_ins.labels(outcome=outcome, method=method[:64] or "none").inc()


def code_sent(channel: str) -> None:
    """A one-time code handed to the e-mail or SMS backend (``channel``: ``email``, ``sms``)."""
    if enabled():
        collectors().codes_sent.labels(channel=channel[:32]).inc()


def lockout() -> None:
    if enabled():
        collectors().lockouts.inc()


def token_issued(grant_type: str) -> None:
    """A token response was stored (``authorization_code``, ``refresh_token``, ``portcullis_user_token``)."""
    if enabled():
        collectors().tokens_issued.labels(grant_type=grant_type[:64] or "none").inc()


# -- requests --------------------------------------------------------------------------------------------
def endpoint_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unmatched"


class MetricsMiddleware:
    """Counts and times every request (list it first in ``MIDDLEWARE``); absent while metrics are off."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not enabled():
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.metrics = collectors()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        if enabled():  # a setting turned off since the chain was built (tests)
            endpoint = endpoint_of(request)
            method = request.method if request.method in METHODS else "other"
            self.metrics.requests.labels(endpoint=endpoint, method=method,
                                         status=f"{response.status_code // 100}xx").inc()
            self.metrics.latency.labels(endpoint=endpoint, method=method).observe(time.perf_counter() - started)
        return response


# -- the exposition ----------------------------------------------------------------------------------------
def exposition() -> tuple[bytes, str]:
    """The text exposition and its content type: this process's metrics, or every worker's in
    multi-process mode."""
    client: Any = prometheus_client
    collectors()  # registered even before the first event, so that the names are there
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return client.generate_latest(registry), client.CONTENT_TYPE_LATEST
    return client.generate_latest(client.REGISTRY), client.CONTENT_TYPE_LATEST
