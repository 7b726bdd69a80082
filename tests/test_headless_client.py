"""examples/headless_client.py against a live server: the B2B document's two diagrams walked by the
command-line client, its prompts answered through stdin as a user would type them."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from captcha.models import CaptchaStore
from django.core import mail

from tests.helpers import PASSWORD, ClientApp, code_in_mail, make_application, totp_now

CLIENT = Path(__file__).resolve().parent.parent / "examples" / "headless_client.py"
WAIT = 60  # seconds: a generous bound on a busy machine, never asserted as a timing


def headless_app(public: bool = False) -> ClientApp:
    return make_application(public=public, name="Headless CLI", headless=True)


@pytest.fixture
def app(transactional_db: Any) -> ClientApp:
    return headless_app()


class Running:
    """The client as a subprocess: stdin written on demand, stderr (its prompts) read line by line."""

    def __init__(self, server: str, app: ClientApp, *args: str) -> None:
        secret = [f"--client-secret={app.client_secret}"] if app.client_secret else []  # a secret may start with "-"
        self.process = subprocess.Popen(
            [sys.executable, str(CLIENT), "--server", server, "--client-id", app.client_id, *secret, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            self.lines.put(line)
        self.lines.put("")  # the end: the client exited

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first stderr line (from now on) matching ``pattern``."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no {pattern!r} in {self.seen}") from None
            if not line:
                raise AssertionError(f"no {pattern!r} in {self.seen}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self) -> tuple[int, str, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        returncode = self.process.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return returncode, self.process.stdout.read(), "".join(self.seen)


def run(server: str, app: ClientApp, *args: str, stdin: str = "") -> tuple[int, str, str]:
    running = Running(server, app, *args)
    if stdin:
        running.send(stdin)
    return running.finish()


def userinfo_of(server: str, token: dict[str, Any]) -> dict[str, Any]:
    response = requests.get(f"{server}/oauth/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"},
                            timeout=WAIT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_mail(count: int) -> Any:
    ends = time.monotonic() + WAIT
    while len(mail.outbox) < count:
        assert time.monotonic() < ends, "no e-mail arrived"
        time.sleep(0.05)
    return mail.outbox[count - 1]


# -- the password diagram --------------------------------------------------------------------------------
def test_a_password_without_a_second_factor_prints_a_token_that_works_at_userinfo(live_server, user, app):
    returncode, out, err = run(live_server.url, app, "password", "--email", "alice@example.com", stdin=PASSWORD)
    assert returncode == 0, err
    token = json.loads(out)
    assert set(token) >= {"access_token", "refresh_token", "id_token", "expires_in"}
    assert userinfo_of(live_server.url, token)["email"].lower() == "alice@example.com"
    assert PASSWORD not in out + err  # the password read from stdin is never echoed


def test_a_wrong_password_is_refused_with_exit_code_1(live_server, user, app):
    returncode, out, err = run(live_server.url, app, "password", "--email", "alice@example.com",
                               "--password", "not the password")
    assert (returncode, out) == (1, "")
    assert "key.invalid_credentials" in err


def test_a_second_factor_is_asked_and_checked(live_server, totp_user, app):
    running = Running(live_server.url, app, "--quiet", "password", "--email", "alice@example.com",
                      "--password", PASSWORD)
    running.wait_for(r"1\. totp")
    running.send("")  # the default method: the first listed
    running.send(totp_now())
    returncode, out, err = running.finish()
    assert returncode == 0, err
    assert userinfo_of(live_server.url, {"access_token": out.strip()})["sub"]


def test_a_demanded_captcha_is_shown_and_its_answer_sent_with_the_same_request(live_server, user):
    spa = headless_app(public=True)
    for _ in range(3):  # failures make the server demand a captcha
        requests.post(f"{live_server.url}/api/authorization/login-by-password", timeout=WAIT, json={
            "client_id": spa.client_id, "email": "alice@example.com", "password": "wrong password"})
    running = Running(live_server.url, spa, "password", "--email", "alice@example.com", "--password", PASSWORD)
    url = running.wait_for(r"Captcha image: (\S+)").group(1)
    captcha_id = running.wait_for(r"Captcha id: (\S+)").group(1)
    assert captcha_id in url and requests.get(url, timeout=WAIT).status_code == 200
    running.send(CaptchaStore.objects.get(hashkey=captcha_id).response)
    returncode, out, err = running.finish()
    assert returncode == 0, err
    assert userinfo_of(live_server.url, json.loads(out))["email"].lower() == "alice@example.com"


def test_an_email_code_second_factor_is_sent_with_the_data_2fa(live_server, totp_user, app, mailoutbox):
    running = Running(live_server.url, app, "password", "--email", "alice@example.com", "--password", PASSWORD)
    running.wait_for(r"2\. email_code")
    running.send("email_code")
    running.wait_for("A code was sent")
    running.send(code_in_mail(wait_for_mail(1)))
    returncode, out, err = running.finish()
    assert returncode == 0, err
    assert userinfo_of(live_server.url, json.loads(out))["email"].lower() == "alice@example.com"


def test_a_data_2fa_past_its_timeout_is_not_sent(live_server, totp_user, app, settings):
    from oauth2_provider.models import AccessToken

    settings.PORTCULLIS_INTERACTION_TTL = 1  # the Data2fa's timeout: 1 second
    running = Running(live_server.url, app, "password", "--email", "alice@example.com", "--password", PASSWORD)
    running.wait_for(r"1\. totp")
    time.sleep(1.5)  # the user is slow: the timeout passes before the code is typed
    running.send("")
    running.send(totp_now())
    returncode, out, err = running.finish()
    assert (returncode, out) == (1, ""), err
    assert "has expired (its timeout passed)" in err and "data_2fa_expired" not in err  # said by the client
    assert not AccessToken.objects.exists()


# -- the one-time code diagram -----------------------------------------------------------------------------
def test_a_one_time_code_by_e_mail_signs_in(live_server, user, app, mail_code, mailoutbox):
    running = Running(live_server.url, app, "code", "--email", "alice@example.com")
    running.wait_for("A one-time code was sent")
    running.send(code_in_mail(wait_for_mail(1)))
    returncode, out, err = running.finish()
    assert returncode == 0, err
    assert userinfo_of(live_server.url, json.loads(out))["email"].lower() == "alice@example.com"


def test_a_wrong_one_time_code_is_refused(live_server, user, app, mail_code, mailoutbox):
    running = Running(live_server.url, app, "code", "--email", "alice@example.com")
    running.wait_for("A one-time code was sent")
    wait_for_mail(1)
    running.send("000000")
    returncode, out, err = running.finish()
    assert (returncode, out) == (1, "") and "key.invalid_code" in err


def test_an_sso_e_mail_is_told_where_to_continue(live_server, user, app, mail_code):
    from authenticators.models import Authenticator
    from tests import fake_upstream

    fake_upstream.register()
    try:
        Authenticator.objects.create(name="acme", auth_type=fake_upstream.TYPE, title="Acme", sort_order=20,
                                     options={"domains": ["acme.test"]})
        returncode, out, err = run(live_server.url, app, "code", "--email", "bob@acme.test")
    finally:
        fake_upstream.unregister()
    assert (returncode, out) == (1, "") and "sso.sso_required" in err
    assert f"{live_server.url}/api/auth/acme/authorize-url?client_id={app.client_id}" in err


def test_a_rate_limited_request_prints_when_to_retry(live_server, user, app, settings):
    settings.PORTCULLIS_API_RATE_LIMIT = 0  # every request is past the limit
    returncode, out, err = run(live_server.url, app, "password", "--email", "alice@example.com", "--password", PASSWORD)
    assert (returncode, out) == (1, "") and "rate_limited.too_many_requests" in err
    assert re.search(r"Retry after \d+ seconds", err), err


def test_bad_usage_exits_2(live_server, app):
    returncode, out, err = run(live_server.url, app, "code", "--email", "a@b.c", "--phone", "+15551234567")
    assert returncode == 2 and "not allowed with" in err
