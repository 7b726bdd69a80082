"""identity.headers writes a header as Django's ``response.headers[name] = value`` does, only
cheaper, and refuses what Django refuses."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.http import BadHeaderError, HttpResponse

from identity import headers


def test_a_header_put_reads_back_and_is_sent_as_djangos() -> None:
    ours, djangos = HttpResponse(b"ok"), HttpResponse(b"ok")
    headers.put(ours, "X-Request-ID", "abc-123")
    djangos.headers["X-Request-ID"] = "abc-123"
    assert ours["x-request-id"] == "abc-123"
    assert headers.has(ours, "X-REQUEST-ID") and not headers.has(ours, "Vary")
    assert list(ours.items()) == list(djangos.items())
    headers.put(ours, "x-request-id", "def")  # any case replaces the header, as Django's
    assert ours.headers == {"Content-Type": "text/html; charset=utf-8", "x-request-id": "def"}


def test_a_value_that_is_not_printable_ascii_gets_djangos_checks() -> None:
    response = HttpResponse(b"ok")
    for value in ("a\r\nSet-Cookie: x=1", "a\nb"):
        with pytest.raises(BadHeaderError):
            headers.put(response, "Content-Language", value)
        assert not headers.has(response, "Content-Language")
    headers.put(response, "Content-Language", "é")  # latin-1: Django keeps it as it is
    assert response["Content-Language"] == "é"
    headers.put(response, "Content-Language", "日本")  # not latin-1: Django MIME-encodes it
    assert response["Content-Language"].startswith("=?utf-8?")


@pytest.mark.django_db
def test_the_bare_view_s_headers_reach_the_client(settings) -> None:
    """The request id, Vary and Content-Language, written through identity.headers, are in what
    the WSGI handler hands the server, and a Vary a view set is kept and extended."""
    sent: list[list[tuple[str, str]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        sent.append(response_headers)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz", "QUERY_STRING": "", "SCRIPT_NAME": "",
               "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "testserver", "HTTP_ACCEPT_LANGUAGE": "ru", "HTTP_X_REQUEST_ID": "trace-1",
               "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": sys.stderr}
    response = WSGIHandler()(environ, start_response)
    response.close()
    got = dict(sent[0])
    assert got["X-Request-ID"] == "trace-1"
    assert got["Content-Language"] == "ru"
    assert "Accept-Language" in got["Vary"]
