"""Middleware of the standalone server: Django's, made lazy where a request does not use it, and
leaving no reference cycle behind.

Django's ``AuthenticationMiddleware`` sets ``request.user`` to a lazy object whose function closes
over the request (and ``request.auser`` to a ``partial`` of it), and ``MessageMiddleware``'s lazy
variant here did the same: the request refers to itself, so when a request ends its objects (the
request, its session store, its body stream, the lazy objects, about 26 for the bare view) are not
freed with its response but left to the cyclic garbage collector, which then ran every dozen
requests (in gunicorn about 9 µs a request, 4 % of the bare view's CPU; docs/performance.md). Here
those functions hold the request weakly: it is freed as soon as its response is, and the
collector has nothing of a request's to do. The lazy objects answer as before for as long as the
request lives, which is as long as anything can reach them through it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty


class _Lazy(SimpleLazyObject):
    """Django's ``SimpleLazyObject``, made without its ``__init__``'s three trips through
    ``LazyObject.__getattribute__`` and ``__setattr__`` (Python methods, about 1 µs of the bare view
    each time): the same two entries are put in the instance's dictionary directly."""

    def __init__(self, func: Callable[[], Any]) -> None:
        own = object.__getattribute__(self, "__dict__")
        own["_setupfunc"] = func
        own["_wrapped"] = empty


def _used(lazy: SimpleLazyObject) -> bool:
    """Whether the lazy object's function has run (``lazy._wrapped is not empty``, without the trip
    through ``LazyObject.__getattribute__``)."""
    return object.__getattribute__(lazy, "__dict__").get("_wrapped", empty) is not empty


class LazyMessageMiddleware(MessageMiddleware):
    """Django's ``MessageMiddleware``, which makes the message storage (a cookie signer and the
    session's) on every request, makes it only when a view or template uses messages (the admin
    and the two-factor pages). Messages are stored and shown exactly as before."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self.next = get_response  # typed as the sync callable it is (sync_capable only)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        held = weakref.ref(request)
        storage = _Lazy(lambda: default_storage(_alive(held)))
        request._messages = storage  # type: ignore[attr-defined]
        response = self.next(request)
        if _used(storage):  # store what is left
            response = self.process_response(request, response)
        return response


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    """Django's ``AuthenticationMiddleware`` whose lazy ``request.user`` and ``request.auser``
    hold the request weakly (the module's docstring says why). The user is loaded, cached on the
    request and answered exactly as by Django's; the system checks and the session tracking of
    ``identity`` take this subclass for Django's."""

    def process_request(self, request: HttpRequest) -> None:
        if not hasattr(request, "session"):
            super().process_request(request)  # Django's ImproperlyConfigured
            return
        held = weakref.ref(request)
        request.user = _Lazy(lambda: auth_middleware.get_user(_alive(held)))  # type: ignore[assignment]
        request.auser = partial(_auser, held)


async def _auser(held: weakref.ReferenceType[HttpRequest]) -> Any:
    return await auth_middleware.auser(_alive(held))


def _alive(held: weakref.ReferenceType[HttpRequest]) -> HttpRequest:
    request = held()
    if request is None:  # only a lazy object kept after its request ended can ask
        raise RuntimeError("the request this lazy object belongs to has ended")
    return request
