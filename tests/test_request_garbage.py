"""A request through the standalone server's middleware leaves no reference cycle: its objects
are freed with its response, not by the cyclic garbage collector (config.middleware; the collector
ran every dozen requests and cost about 4 % of the bare view's CPU, docs/performance.md)."""

from __future__ import annotations

import asyncio
import gc
import io
import sys
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import run_checks
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.http import HttpResponse
from django.test import RequestFactory

from config.middleware import AuthenticationMiddleware
from tests.helpers import open_connection

pytestmark = pytest.mark.django_db


def environ(path: str) -> dict[str, Any]:
    """What gunicorn hands the WSGI application for ``GET path``."""
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr}


STATUSES = {"/healthz": "200", "/.well-known/openid-configuration": "200", "/no-such-page": "404",
            "/oauth/userinfo": "401", "/sign-in/": "302"}


@pytest.mark.parametrize("path", list(STATUSES))
def test_a_request_leaves_nothing_for_the_cyclic_collector(path):
    application = WSGIHandler()
    statuses = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    def requests(count: int) -> None:
        for _ in range(count):
            response = application(environ(path), start_response)
            b"".join(response)
            response.close()

    with open_connection():
        requests(3)  # what the first requests make once (caches, lazy imports) is not a request's
        gc.collect()
        gc.disable()  # so that what the requests leave is still there to count
        try:
            requests(20)
            left = gc.collect()
        finally:
            gc.enable()
    assert len(statuses) == 23 and len(set(statuses)) == 1, statuses
    assert statuses[0][:3] == STATUSES[path]
    # Django's AuthenticationMiddleware left 26 objects a request here (the request, its session
    # store, its body stream, the lazy user and messages, each closing over the request), and a
    # class-based view 7 more (the view, holding its request and, as ``head``, its own ``get``).
    assert left == 0


def test_the_standalone_server_lists_the_variant_and_the_checks_take_it_for_djangos():
    middleware = list(settings.MIDDLEWARE)
    assert "django.contrib.auth.middleware.AuthenticationMiddleware" not in middleware
    at = middleware.index("config.middleware.AuthenticationMiddleware")
    # the session tracking is installed right after it, as after Django's
    assert middleware[at + 1] == "identity.sessions.SessionTrackingMiddleware"
    assert not [message for message in run_checks() if message.id == "identity.E001"]


def test_without_any_authentication_middleware_the_check_says_so(settings):
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if not name.endswith(".AuthenticationMiddleware")]
    errors = [message for message in run_checks() if message.id == "identity.E001"]
    assert len(errors) == 1 and "AuthenticationMiddleware" in errors[0].msg


def request_through_the_middleware(user: Any | None = None) -> Any:
    request = RequestFactory().get("/")
    SessionMiddleware(lambda request: HttpResponse()).process_request(request)
    if user is not None:
        from django.contrib.auth import login

        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    AuthenticationMiddleware(lambda request: HttpResponse()).process_request(request)
    return request


async def auser_of(request: Any) -> Any:
    """``await request.auser()``, then the connection its thread opened closed (the test database
    is dropped at the end)."""
    user = await request.auser()
    await sync_to_async(connections.close_all)()
    return user


@pytest.mark.django_db(transaction=True)  # auser() reads in another thread, on its own connection
def test_the_lazy_user_answers_as_djangos_sync_and_async():
    anonymous = request_through_the_middleware()
    assert isinstance(anonymous.user, AnonymousUser) and not anonymous.user.is_authenticated
    assert isinstance(asyncio.run(auser_of(anonymous)), AnonymousUser)
    account = get_user_model().objects.create_user("weakly-held", password="not-used-here-1")
    signed_in = request_through_the_middleware(account)
    assert signed_in.user.pk == account.pk and signed_in.user.is_authenticated
    assert signed_in.user._wrapped is signed_in._cached_user  # loaded once, cached on the request
    assert asyncio.run(auser_of(signed_in)).pk == account.pk


def test_without_a_session_it_refuses_as_djangos_does():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="SessionMiddleware"):
        AuthenticationMiddleware(lambda request: HttpResponse()).process_request(RequestFactory().get("/"))


def test_head_is_still_answered_by_get_and_allow_is_unchanged(client):
    """``identity.views_base``: HEAD as Django answers it (the view's GET, without the body), a
    view that leaves HEAD out of its methods still refuses it, and one without a GET neither
    answers nor lists it."""
    get, head = client.get("/oauth/userinfo"), client.head("/oauth/userinfo")
    assert get.status_code == head.status_code == 401 and head.content == b""
    assert head["WWW-Authenticate"] == get["WWW-Authenticate"]
    assert client.head("/.well-known/openid-configuration").status_code == 200
    # /sign-in/ would start an interaction on GET, so it leaves HEAD out on purpose
    assert client.get("/sign-in/?next=/account/").status_code == 302
    refused = client.head("/sign-in/?next=/account/")
    assert refused.status_code == 405 and refused["Allow"] == "GET, OPTIONS"
    refused = client.get("/oauth/token")
    assert refused.status_code == 405 and "HEAD" not in refused["Allow"] and "POST" in refused["Allow"]
    assert client.head("/oauth/token").status_code == 405
