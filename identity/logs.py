"""Logs an operator can read: a request id on every record, one access line per request, and a JSON
formatter (``LOG_FORMAT=json`` in the standalone server).

- :class:`RequestLogMiddleware` (first in ``MIDDLEWARE``) takes the request id from an incoming
  ``X-Request-ID`` header when it is sane (1 to 128 of ``A-Z a-z 0-9 . _ -``), else makes one
  (32 random hex digits); echoes it back as ``X-Request-ID``; and writes one line per request to the
  ``portcullis.request`` logger (INFO): method, path (never the query string), status, duration,
  client IP (``identity.network.client_ip``) and the signed-in user's id. No header, body or
  cookie is ever logged.
- :class:`RequestIdFilter` (on a handler) gives every record ``request_id``: the id of the request
  being handled in this thread (``"-"`` outside one), so a library's log line can be traced too.
- :class:`JsonFormatter` writes each record as one JSON object: ``time``, ``level``, ``logger``,
  ``message``, ``request_id``, the access line's fields, and ``exception`` (a traceback) when there is one.

The standard library only: nothing here needs Django's apps to be loaded (``LOGGING`` names these
classes and is configured before the apps are).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from identity import headers

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("portcullis_request_id", default=None)
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
HEADER = "X-Request-ID"
access_logger = logging.getLogger("portcullis.request")
# What the access line adds to a record (``extra=``); the JSON formatter writes these, never other extras.
ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "ip", "user_id")
MAX_PATH = 1000  # characters of a path the access line keeps


def current_request_id() -> str | None:
    """The id of the request being handled (in this thread or task), or None."""
    return _request_id.get()


def request_id_from(value: object) -> str:
    """``value`` (an incoming ``X-Request-ID``) when it is sane, else a new id."""
    if isinstance(value, str) and SANE_REQUEST_ID.match(value):
        return value
    return os.urandom(16).hex()  # 128 random bits, as uuid4().hex (without building a UUID: 8x faster)


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` (``"-"`` outside a request) for a handler's format string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id if request_id and request_id != "-" else _request_id.get(),
        }
        for field in ACCESS_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def signed_in_user_id(request: HttpRequest) -> Any:
    """The id of the request's signed-in user, when something already looked the user up (the
    access line never loads a session the request did not read)."""
    user = request.__dict__.get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):  # type: ignore[attr-defined]
        return None
    return user.pk if getattr(user, "is_authenticated", False) else None


class RequestLogMiddleware:
    """The request id and the access line (see the module's docstring). List it first in
    ``MIDDLEWARE``, so that its duration covers the other middleware and their records carry the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        # Kept until the request is finished (request_finished, below), not only until this returns:
        # Django logs an error answer (django.request) after the whole middleware chain.
        _request_id.set(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        headers.put(response, HEADER, request_id)  # sane: printable ASCII (request_id_from)
        if access_logger.isEnabledFor(logging.INFO):
            self.log(request, response, (time.perf_counter() - started) * 1000)
        return response

    @staticmethod
    def log(request: HttpRequest, response: HttpResponse, duration_ms: float) -> None:
        from identity.network import client_ip

        duration_ms = round(duration_ms, 1)
        method, path, status = (request.method or "")[:16], request.path[:MAX_PATH], response.status_code
        # In the text line a path's control characters (a decoded %0A) are escaped: one request, one line.
        access_logger.info("%s %s %s %.1fms", method, json.dumps(path, ensure_ascii=False)[1:-1], status, duration_ms, extra={
            "method": method, "path": path, "status": status, "duration_ms": duration_ms,
            "ip": client_ip(request), "user_id": signed_in_user_id(request)})


def _finished(**kwargs: Any) -> None:
    _request_id.set(None)


request_finished.connect(_finished, dispatch_uid="portcullis.request_id")
