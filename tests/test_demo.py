"""The demo client fetches discovery from the configured issuer, or from this very server on a
loopback address, never from where the Host header points; and a fetch that fails is the demo's
error page, never a 500. (The whole flow in a browser: tests/test_browser_demo.py.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core import signing
from django.test import Client

DEMO_VIEWS = ["/demo/login", "/demo/callback", "/demo/logout"]


@pytest.fixture
def demo_on(settings) -> None:
    settings.PORTCULLIS_DEMO = True
    settings.PORTCULLIS_ISSUER = ""


@pytest.fixture
def trap() -> Iterator[socket.socket]:
    """A port on this machine that records whether anyone connected (Redis, say)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    yield listener
    listener.close()


def connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def assert_demo_error(response: Any, *words: str) -> None:
    assert response.status_code == 400, response.content[:500]
    page = response.content.decode()
    assert 'id="demo-error"' in page
    for word in words:
        assert word in page, page


@pytest.mark.parametrize("path", DEMO_VIEWS)
def test_the_host_header_cannot_point_the_demo_at_another_port(db, demo_on, trap, path):
    """Host: 127.0.0.1:<port> is an allowed host on any port: the demo fetched
    http://127.0.0.1:<port>/.well-known/... from the server itself, and answered 500 when refused."""
    port = trap.getsockname()[1]
    browser = Client(raise_request_exception=False)
    # The callback of a flow this browser started, so that it gets as far as discovery.
    browser.cookies["portcullis_demo"] = signing.dumps({"state": "s", "nonce": "n", "verifier": "v"}, salt="demo-flow")
    response = browser.get(path, {"state": "s", "code": "c"}, HTTP_HOST=f"127.0.0.1:{port}")
    assert_demo_error(response, "ISSUER")
    assert not connected(trap)


def test_a_host_that_is_not_loopback_is_not_fetched_either(db, demo_on, settings):
    settings.ALLOWED_HOSTS = ["*"]
    response = Client(raise_request_exception=False).get("/demo/login", HTTP_HOST="internal.example.com")
    assert_demo_error(response, "ISSUER")


@pytest.fixture
def answering() -> Iterator[Callable[[int, bytes], str]]:
    """Start a local HTTP server that answers every request with ``status`` and ``body``."""
    servers: list[HTTPServer] = []

    def start(status: int, body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("path", ["/demo/login", "/demo/logout"])
@pytest.mark.parametrize("answer", ["refused", "not-json", "error-status", "not-discovery"])
def test_a_failed_discovery_fetch_is_the_demos_error_page(db, demo_on, settings, answering, path, answer):
    if answer == "refused":
        issuer = f"http://127.0.0.1:{closed_port()}"
    elif answer == "not-json":
        issuer = answering(200, b"<html>a proxy's page</html>")
    elif answer == "error-status":
        issuer = answering(503, b'{"error": "temporarily_unavailable"}')
    else:
        issuer = answering(200, b'{"issuer": 1}')
    settings.PORTCULLIS_ISSUER = issuer
    response = Client(raise_request_exception=False).get(path, HTTP_HOST=urlsplit(issuer).netloc)
    assert_demo_error(response)


def test_on_this_servers_loopback_address_the_demo_starts_a_sign_in(live_server, demo_on, transactional_db):
    response = requests.get(f"{live_server.url}/demo/login", allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:500]
    assert response.headers["Location"].startswith(f"{live_server.url}/oauth/authorize?")


def test_with_an_issuer_the_demo_moves_to_the_issuers_host(live_server, demo_on, settings, transactional_db):
    """Opened under another name of the server, the demo goes to the issuer's host first, so the
    flow's cookie comes back to the host the callback is on."""
    settings.PORTCULLIS_ISSUER = live_server.url  # http://localhost:<port>
    port = urlsplit(live_server.url).port
    moved = requests.get(f"http://127.0.0.1:{port}/demo/login", allow_redirects=False, timeout=30)
    assert moved.status_code == 302, moved.text[:500]
    assert moved.headers["Location"] == f"{live_server.url}/demo/login"
    started = requests.get(moved.headers["Location"], allow_redirects=False, timeout=30)
    assert started.headers["Location"].startswith(f"{live_server.url}/oauth/authorize?")
    assert "redirect_uri=" + requests.utils.quote(f"{live_server.url}/demo/callback", safe="") in started.headers["Location"]
