"""Middleware of the standalone server: Django's, made lazy where a request does not use it."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty


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
        storage = SimpleLazyObject(lambda: default_storage(request))
        request._messages = storage  # type: ignore[attr-defined]
        response = self.next(request)
        if storage._wrapped is not empty:  # type: ignore[attr-defined]  # used: store what is left
            response = self.process_response(request, response)
        return response
