"""The lockout holds across worker processes: gunicorn with 2 sync workers sharing Redis and one
PostgreSQL database (the standalone server's production shape). Failures served by either worker
count together, and both workers refuse the locked account.

Needs PostgreSQL and Redis on 127.0.0.1 (skipped otherwise). Its own database (cloned from the
migrated template, tests/servers.py; dropped at the end), Redis ``RISK_LIVE_REDIS_URL`` (default db 3)
under a key prefix of its own."""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import PASSWORD
from tests.servers import (
    PG_PORT,
    REDIS_PORT,
    Server,
    clear_redis_prefix,
    free_port,
    manage,
    migrated_database,
    pg,
    reachable,
    server_env,
)

pytestmark = pytest.mark.postgres

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CAPTCHA_ID = re.compile(r'name="captcha_id" value="([0-9a-f]+)"')


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    if not (reachable(PG_PORT) and reachable(REDIS_PORT)):
        pytest.skip("needs PostgreSQL and Redis on 127.0.0.1")
    redis_url = os.environ.get("RISK_LIVE_REDIS_URL", "redis://127.0.0.1:6379/3")
    prefix = "risk-live-" + secrets.token_hex(6)
    port = free_port()
    with migrated_database("portcullis_risk_live") as database:
        env = server_env(database, tmp_path / "var", port, redis_url=redis_url, prefix=prefix)
        server = Server(env, port, tmp_path / "gunicorn.log")
        try:
            manage(env, "shell", "-c", "from django.contrib.auth import get_user_model; "
                   f"get_user_model().objects.create_user('alice', 'alice@example.com', {PASSWORD!r})")
            server.start()
            yield server, database
        finally:
            server.stop()
            clear_redis_prefix(redis_url, prefix)


def answered_by(response: requests.Response) -> str:
    return response.headers["X-Worker-Pid"]


class Browser:
    """One browser session on the live server; each request on a new connection (so either worker
    may take it)."""

    def __init__(self, server: Server, database: str) -> None:
        self.server, self.database = server, database
        self.session = requests.Session()
        self.session.headers["Connection"] = "close"
        start = self.session.get(server.url + "/sign-in/?next=/", allow_redirects=False, timeout=20)
        assert start.status_code == 302, start.text[:500]
        self.url = server.url + start.headers["Location"]
        self.page = self.session.get(self.url, timeout=20)
        assert self.page.status_code == 200

    def attempt(self, password: str) -> requests.Response:
        data = {"identifier": "alice", "password": password, "authenticator": "password",
                "csrfmiddlewaretoken": CSRF.search(self.page.text).group(1)}  # type: ignore[union-attr]
        key = CAPTCHA_ID.search(self.page.text)
        if key:  # read the answer from the captcha store, as a person reads the picture
            row = pg("SELECT response FROM captcha_captchastore WHERE hashkey = %s", self.database, (key.group(1),))
            data.update(captcha_id=key.group(1), captcha_answer=row[0])
        response = self.session.post(self.url, data=data, allow_redirects=False, timeout=30)
        if response.status_code != 429:
            self.page = response if response.status_code == 400 else self.session.get(self.url, timeout=20)
        return response


def test_the_lockout_holds_across_two_gunicorn_workers_sharing_redis(gunicorn: tuple[Server, str]) -> None:
    server, database = gunicorn
    browsers = [Browser(server, database) for _ in range(2)]
    served: dict[str, int] = {}  # worker pid -> wrong passwords it answered
    lock = threading.Lock()

    def run(browser: Browser) -> None:
        for _ in range(30):
            with lock:
                if sum(served.values()) >= 10:
                    return
            response = browser.attempt("wrong password")
            if "The sign-in details are incorrect." in response.text:  # not a captcha demand
                with lock:
                    pid = response.headers["X-Worker-Pid"]
                    served[pid] = served.get(pid, 0) + 1

    # Ten failures from two browsers at once (same IP), answered by either worker.
    threads = [threading.Thread(target=run, args=(browser,)) for browser in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert sum(served.values()) >= 10, served

    # Now every worker refuses the account, even with the right password: in any split of the ten
    # failures at least one worker saw fewer than ten itself, so its 429 comes from the shared count.
    refused = server.on_each_worker(lambda: Browser(server, database).attempt(PASSWORD), answered_by)
    for response in refused.values():
        assert response.status_code == 429, response.text[:500]
        assert 0 < int(response.headers["Retry-After"]) <= 900


LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"
HEADLESS_CLIENT_ID = "headless-workers"


def headless_application(server: Server) -> None:
    """A public first-party application allowed the headless API, in the server's database."""
    manage(server.env, "shell", "-c",
                    "from oauth2_provider.models import get_application_model; "
                    "from identity.models import ApplicationSettings; "
                    "Application = get_application_model(); "
                    "app = Application.objects.create(client_id=" + repr(HEADLESS_CLIENT_ID) + ", name='Shop', "
                    "client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, "
                    "redirect_uris='https://rp.example.com/callback', algorithm=Application.RS256_ALGORITHM); "
                    "ApplicationSettings.objects.create(application=app, first_party=True, headless_api=True)")


def headless_attempt(server: Server, database: str, password: str) -> requests.Response:
    """A login-by-password on a new connection (either worker may take it), answering the captcha
    it is asked for from the captcha store, as a person reads the picture."""
    body: dict[str, Any] = {"client_id": HEADLESS_CLIENT_ID, "email": "alice@example.com", "password": password}
    headers = {"Connection": "close"}
    response = requests.post(server.url + LOGIN_BY_PASSWORD, json=body, headers=headers, timeout=30)
    if response.status_code == 400 and "captcha_answer" in response.json():
        key = response.json()["captcha_answer"]["captcha"]["id"]
        row = pg("SELECT response FROM captcha_captchastore WHERE hashkey = %s", database, (key,))
        body["captcha"] = {"id": key, "answer": row[0]}
        response = requests.post(server.url + LOGIN_BY_PASSWORD, json=body, headers=headers, timeout=30)
    return response


def test_the_headless_lockout_holds_across_two_gunicorn_workers(gunicorn: tuple[Server, str]) -> None:
    """Ten wrong passwords at /api/authorization/login-by-password, five answered by each worker
    (neither saw ten itself), lock the account on both: the right password is then refused by each
    (429 with Retry-After). The requests stay under the JSON APIs' 30 a minute per IP, and the lockout's Retry-After (up to 15
    minutes) is longer than that limit's window: the 429s are the lockout's."""
    server, database = gunicorn
    headless_application(server)
    for _ in range(5):  # five wrong passwords answered by each worker: neither saw ten itself
        for response in server.on_each_worker(lambda: headless_attempt(server, database, "wrong password"),
                                               answered_by).values():
            assert response.status_code == 400, response.text[:500]
            assert response.json()["key"]["code"] == "invalid_credentials", response.text[:500]
    refused = server.on_each_worker(lambda: headless_attempt(server, database, PASSWORD), answered_by)
    for response in refused.values():
        assert response.status_code == 429, response.text[:500]
        assert response.json()["rate_limited"]["code"] == "too_many_requests"
        assert 60 < int(response.headers["Retry-After"]) <= 900
