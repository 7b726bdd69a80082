"""A test-only redirect-type authenticator type and a tiny fake upstream provider on 127.0.0.1.

``FakeUpstreamAuth`` sends the browser to its ``upstream`` option (default: the fake server below);
its ``complete()`` signs in (or, with ``sign_up``, creates) the account of the e-mail the callback's
``code`` names, as an upstream that vouches for that e-mail would. The fake server's
``/authorize`` shows a page "Fake upstream" with the ``login_hint`` it got and a link back to the
callback with ``code=<login_hint or ?as=>``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authenticators.base import AuthError, RedirectAuth
from authenticators.registry import registry

TYPE = "test-upstream"
UPSTREAM = "https://upstream.test/authorize"


class FakeUpstreamAuth(RedirectAuth):
    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str,
                      login_hint: str = "") -> str:
        query = {"state": state, "redirect_uri": redirect_uri, "nonce": nonce}
        if login_hint:
            query["login_hint"] = login_hint
        return f"{self.options.get('upstream') or UPSTREAM}?{urlencode(query)}"

    def complete(self, params: dict[str, Any], pending: dict[str, Any]) -> Any:
        from django.contrib.auth import get_user_model

        email = str(params.get("code") or "")
        if "@" not in email:
            raise AuthError("invalid_credentials")
        user = self.authenticator.find_user(email)
        if user is None:
            user = get_user_model().objects.filter(email__iexact=email).first()
            if user is None and self.options.get("sign_up"):
                user = self.authenticator.new_user(email, {"email": email})
            elif user is not None:
                from authenticators.models import UserAuthenticator

                UserAuthenticator.objects.create(authenticator=self.authenticator, user=user, uuid=email)
        if user is None:
            raise AuthError("invalid_credentials")
        return user

    def amr(self) -> list[str]:
        return ["fed"]


def register() -> None:
    registry.register(TYPE, FakeUpstreamAuth, title="Fake upstream", replace=True)


def unregister() -> None:
    registry.unregister(TYPE)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query).items()}
        who = query.get("as") or query.get("login_hint", "")
        back = f"{query.get('redirect_uri', '')}?{urlencode({'state': query.get('state', ''), 'code': who})}"
        body = (f"<!doctype html><html lang='en'><title>Fake upstream</title><h1>Fake upstream</h1>"
                f"<p id='hint'>{escape(query.get('login_hint', ''))}</p>"
                f"<a href='{escape(back)}'>Continue as {escape(who)}</a></html>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  quiet
        pass


@contextmanager
def fake_upstream_server() -> Iterator[str]:
    """The fake upstream's authorization URL (``http://127.0.0.1:<port>/authorize``) while it runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/authorize"
    finally:
        server.shutdown()
        server.server_close()
