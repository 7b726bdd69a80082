"""A scripted browser (requests.Session) for live-server tests: it follows our pages the way a
person would, submitting the hosted sign-in form with its CSRF token."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests

from tests.helpers import PASSWORD

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def follow(self, url: str, stop_prefix: str, identifier: str = "alice", password: str = PASSWORD,
               max_hops: int = 10) -> str:
        """GET ``url`` and follow redirects, signing in when the sign-in page shows, until a
        redirect points at ``stop_prefix`` (the client's callback); answer that URL."""
        for _ in range(max_hops):
            if url.startswith(stop_prefix):
                return url
            response = self.session.get(urljoin(self.base_url + "/", url), allow_redirects=False, timeout=10)
            if response.status_code in (301, 302, 303):
                url = urljoin(response.url, response.headers["Location"])
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            assert "/sign-in/" in response.url, response.url
            url = self.sign_in(response, identifier, password)
        raise AssertionError("too many redirects")

    def sign_in(self, page: requests.Response, identifier: str, password: str) -> str:
        token = CSRF.search(page.text)
        assert token, "the sign-in page has no CSRF token"
        response = self.session.post(
            page.url,
            data={"csrfmiddlewaretoken": token.group(1), "identifier": identifier, "password": password,
                  "authenticator": "password"},
            headers={"Referer": page.url},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return urljoin(page.url, response.headers["Location"])
