"""User enumeration (SECURITY.md: "An unknown account and a wrong password give the same body,
status and similar timing; the same for code sending, password reset"): at every step where an
attacker names an account, a known and an unknown one get the same status, the same body (once
what differs per request anyway is taken out: CSRF tokens, interaction ids, code ids, captcha keys,
the address typed) and the same cookies. The timing is measured, not asserted:
``benchmarks/enumeration_timing.py`` (docs/performance.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from captcha.models import CaptchaStore
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from authenticators.models import Authenticator
from identity.models import Profile
from tests.helpers import PASSWORD, authorize_params, sign_in_url_from

pytestmark = pytest.mark.django_db

API = "/api/experience/"
PHONE = "+14155552671"
KNOWN = {"email": "alice@example.com", "identifier": "alice@example.com", "phone": PHONE}
UNKNOWN = {"email": "nobody@example.com", "identifier": "nobody@example.com", "phone": "+14155550100"}

PER_REQUEST = [
    (re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"'), "CSRF"),
    (re.compile(r'name="(code_id|captcha_id)" value="[^"]+"'), r'name="\1" value="ID"'),
    (re.compile(r"/captcha/image/[0-9a-f]+/"), "/captcha/image/KEY/"),
    (re.compile(r"/sign-in/[^/\"?]+/"), "/sign-in/UID/"),
    (re.compile(r'"(id|code_id)": ?"[^"]+"'), r'"\1": "ID"'),
    (re.compile(r"/captcha/image/[^\"]+"), "/captcha/image/KEY"),
    (re.compile(r'"expires_at": ?"[^"]+"'), '"expires_at": "T"'),
    (re.compile(r"\b\d+ s\b"), "N s"),  # a clock, not the account
]


def normalised(text: str, address: dict[str, str]) -> str:
    for value in address.values():
        text = re.sub(re.escape(value), "ADDRESS", text, flags=re.IGNORECASE)
    for pattern, replacement in PER_REQUEST:
        text = pattern.sub(replacement, text)
    return text


def answer(response: Any, address: dict[str, str]) -> tuple[Any, ...]:
    """What an attacker compares: status, Location, body, the cookies set (names and attributes)."""
    cookies = sorted((name, tuple(sorted((k, v) for k, v in morsel.items() if v and k != "expires")))
                     for name, morsel in response.cookies.items())
    retry = response.get("Retry-After")
    return (response.status_code, normalised(response.get("Location", ""), address),
            normalised(response.content.decode(), address), cookies, retry and abs(int(retry)) // 10)


# -- the two faces --------------------------------------------------------------------------------------
def page_start(client: Client, app: Any) -> str:
    response = client.get("/oauth/authorize", authorize_params(app))
    assert response.status_code in (302, 303), response
    url = sign_in_url_from(response)
    client.get(url)
    return url


def api_post(client: Client, path: str, body: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json",
                       headers={"X-CSRFToken": client.cookies["csrftoken"].value})


def api_start(client: Client, event: str = "sign_in") -> str:
    assert client.get(API + "config").status_code == 200
    response = api_post(client, API, {"event": event})
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def compare(step: Callable[[Client, dict[str, str]], list[Any]]) -> None:
    """Run ``step`` for the known and the unknown account, each in a fresh browser and with fresh
    risk counters (an attacker compares like with like); every answer must be the same."""
    runs = []
    for address in (KNOWN, UNKNOWN):
        cache.clear()
        runs.append([answer(response, address) for response in step(Client(enforce_csrf_checks=False), address)])
    assert runs[0] == runs[1]


@pytest.fixture
def known(user: Any, mail_code: Any) -> Any:
    Authenticator.objects.filter(name="sms-code").update(enabled=True)
    profile = Profile.objects.get(user=user)
    profile.phone_number = PHONE
    profile.save()
    return user


# -- password sign-in ---------------------------------------------------------------------------------------
def test_password_sign_in_on_the_page(known, confidential_app):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        url = page_start(client, confidential_app)
        return [client.post(url, {"identifier": address["identifier"], "password": "not the password",
                                  "authenticator": "password"})]
    compare(step)


def test_password_sign_in_through_the_api(known):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        uid = api_start(client)
        return [api_post(client, f"{API}{uid}/password", {"identifier": address["identifier"],
                                                          "password": "not the password"}),
                client.get(f"{API}{uid}")]
    compare(step)


# -- code sending -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["email-code", "sms-code"])
def test_code_sending_on_the_page(known, confidential_app, channel):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        url = page_start(client, confidential_app)
        data = {"email": address["email"]} if channel == "email-code" else {"phone_number": address["phone"]}
        sent = client.post(f"{url}?authenticator={channel}", {"authenticator": channel, "action": "send", **data})
        shown = client.get(f"{url}?authenticator={channel}")
        again = client.post(f"{url}?authenticator={channel}", {"authenticator": channel, "action": "resend"})
        return [sent, shown, again]
    compare(step)


@pytest.mark.parametrize("channel", ["email", "phone_number"])
def test_code_sending_through_the_api(known, channel):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        uid = api_start(client)
        body = {"email": address["email"]} if channel == "email" else {"phone_number": address["phone"]}
        sent = api_post(client, f"{API}{uid}/code", body)
        wrong = api_post(client, f"{API}{uid}/code/verify", {"code_id": sent.json()["code_id"], "code": "000000"})
        return [sent, wrong, api_post(client, f"{API}{uid}/code", body)]
    compare(step)


# -- sign-up and forgot password ----------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["sign-up", "forgot-password"])
def test_sign_up_and_reset_code_sending_on_the_pages(known, confidential_app, page):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        uid = re.search(r"/sign-in/([^/]+)/", page_start(client, confidential_app)).group(1)  # type: ignore[union-attr]
        url = reverse(f"experience:{page}", args=[uid])
        client.get(url)
        sent = client.post(url, {"authenticator": "mail", "email": address["email"], "action": "send"})
        return [sent, client.get(url)]
    compare(step)


@pytest.mark.parametrize("event", ["sign_up", "forgot_password"])
def test_sign_up_and_reset_code_sending_through_the_api(known, event):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        uid = api_start(client, event)
        sent = api_post(client, f"{API}{uid}/code", {"email": address["email"]})
        return [sent, client.get(f"{API}{uid}")]
    compare(step)


# -- the lockout after 10 failures --------------------------------------------------------------------------
def solved(key: str | None) -> dict[str, str]:
    return {"captcha_id": key, "captcha_answer": CaptchaStore.objects.get(hashkey=key).response} if key else {}


def test_the_lockout_on_the_page(known, confidential_app):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        url = page_start(client, confidential_app)
        answers, key = [], None
        for password in ["not the password"] * 10 + [PASSWORD]:
            response = client.post(url, {"identifier": address["identifier"], "password": password,
                                         "authenticator": "password", **solved(key)})
            found = re.search(r'name="captcha_id" value="([0-9a-f]+)"', response.content.decode())
            key = found.group(1) if found else None
            answers.append(response)
        assert answers[-1].status_code == 429
        return answers
    compare(step)


def test_the_lockout_through_the_api(known):
    def step(client: Client, address: dict[str, str]) -> list[Any]:
        uid = api_start(client)
        answers = []
        for password in ["not the password"] * 10 + [PASSWORD]:
            body: dict[str, Any] = {"identifier": address["identifier"], "password": password}
            response = api_post(client, f"{API}{uid}/password", body)
            demanded = response.json().get("captcha_answer", {}).get("captcha")
            if demanded:  # solve the captcha the answer shows, as a person reads the picture
                answers.append(response)
                body["captcha"] = {"id": demanded["id"],
                                   "answer": CaptchaStore.objects.get(hashkey=demanded["id"]).response}
                response = api_post(client, f"{API}{uid}/password", body)
            answers.append(response)
        assert answers[-1].status_code == 429
        return answers
    compare(step)
