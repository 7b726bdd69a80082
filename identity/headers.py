"""Headers the middleware adds to every response (the request id, ``Vary``, ``Content-Language``),
written without the work Django does for an arbitrary header.

``response.headers[name] = value`` checks the name for ASCII and the value for its charset and line
breaks (four string conversions), and ``name in response.headers`` raises and catches a
``KeyError`` when the header is absent (``Mapping.__contains__``): together about 1.3 µs a header
on every request, a few per cent of the bare view (docs/performance.md). Here a value that is
printable ASCII (so it can hold no line break and needs no encoding) is stored as Django stores it
(``CaseInsensitiveMapping``: the lower-cased name → (name, value)); any other value, and any
Django whose headers are kept otherwise, goes through ``response.headers`` and its checks (and
raises ``BadHeaderError`` as there). The response is the same either way: ``response[name]``,
``response.headers`` and the WSGI handler's header list see the header exactly as if Django's
``__setitem__`` had written it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase


def _store(response: HttpResponseBase) -> dict[str, tuple[str, str]] | None:
    store: Any = getattr(response.headers, "_store", None)
    return store if isinstance(store, dict) else None


def has(response: HttpResponseBase, name: str) -> bool:
    """Whether the response has the header ``name`` (any case), as ``name in response.headers``."""
    store = _store(response)
    return name.lower() in store if store is not None else name in response.headers


def put(response: HttpResponseBase, name: str, value: str) -> None:
    """``response.headers[name] = value`` for an ASCII ``name`` (the callers' constants)."""
    store = _store(response)
    if store is not None and value.isascii() and value.isprintable():
        store[name.lower()] = (name, value)
    else:
        response.headers[name] = value
