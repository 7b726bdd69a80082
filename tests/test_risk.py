"""Risk rules (experience.risk): captcha after repeated failures, lockouts, API throttling, as a user
and an attacker meet them on the hosted sign-in page and through the engine."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from captcha.models import CaptchaStore
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.checks import run_checks
from django.test import Client, RequestFactory

from authenticators.models import Authenticator
from experience import interaction as engine
from experience import risk
from experience.errors import EngineError
from experience.models import AuditEvent, Interaction
from experience.policy import Policy
from tests.helpers import PASSWORD, authorize, authorize_params, form_errors, query_of, sign_in_url_from

pytestmark = pytest.mark.django_db

CAPTCHA_ID = re.compile(r'name="captcha_id" value="([0-9a-f]+)"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def start(flow: Any, app: Any) -> str:
    response = flow.authorize(authorize_params(app))
    assert response.status_code == 303
    return sign_in_url_from(response)


def captcha_on(html: str) -> str | None:
    found = CAPTCHA_ID.search(html)
    return found.group(1) if found else None


def post(client: Client, url: str, identifier: str, password: str, *, solve: bool = True, answer: str | None = None,
         page: Any = None) -> Any:
    """A sign-in POST; when the last page (``page``) showed a captcha, answer it (read from the store,
    as a person reads the picture) unless ``solve`` is off."""
    data = {"identifier": identifier, "password": password, "authenticator": "password"}
    key = captcha_on(page.content.decode()) if page is not None and page.status_code != 429 else None
    if key and solve:
        data.update(captcha_id=key, captcha_answer=answer if answer is not None else
                    CaptchaStore.objects.get(hashkey=key).response)
    return client.post(url, data)


def fail(client: Client, url: str, identifier: str, times: int, page: Any = None) -> Any:
    """``times`` wrong passwords, solving each captcha shown: the last response."""
    page = page or client.get(url)
    for _ in range(times):
        page = post(client, url, identifier, "wrong password", page=page)
    return page


# -- captcha on the hosted page --------------------------------------------------------------------
def test_a_captcha_is_shown_after_three_failures_for_the_account(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = flow.client.get(url)
    assert captcha_on(page.content.decode()) is None
    page = fail(flow.client, url, "alice", 2)
    assert page.status_code == 400 and captcha_on(page.content.decode()) is None
    page = fail(flow.client, url, "alice", 1, page)
    html = page.content.decode()
    key = captcha_on(html)
    assert key, html
    assert f'<img src="/captcha/image/{key}/"' in html
    assert '<label for="id_captcha_answer">Type the characters in the picture</label>' in html
    assert flow.client.get(f"/captcha/image/{key}/").status_code == 200


def test_without_the_captcha_even_the_right_password_is_refused_then_solving_it_signs_in(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 3)
    missing = post(flow.client, url, "alice", PASSWORD, solve=False, page=page)
    assert missing.status_code == 400
    assert form_errors(missing.content.decode()) == ["Solve the captcha to continue."]
    assert not Interaction.objects.get().completed_at
    done = post(flow.client, url, "alice", PASSWORD, page=missing)
    assert done.status_code == 303, done.content.decode()[:2000]
    code = query_of(flow.client.get(done["Location"])["Location"])["code"]
    assert code


def test_a_wrong_captcha_answer_is_refused_and_a_new_challenge_shown(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 3)
    old = captcha_on(page.content.decode())
    wrong = post(flow.client, url, "alice", PASSWORD, answer="nope", page=page)
    html = wrong.content.decode()
    assert wrong.status_code == 400
    assert "The captcha answer is wrong. Try the new one." in html
    assert 'aria-describedby="id_captcha_answer_error"' in html
    new = captcha_on(html)
    assert new and new != old
    assert not CaptchaStore.objects.filter(hashkey=old).exists()  # one attempt per key


def test_a_solved_captcha_cannot_be_replayed_for_the_next_attempt(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 3)
    key = captcha_on(page.content.decode())
    answer = CaptchaStore.objects.get(hashkey=key).response
    data = {"identifier": "alice", "password": "wrong", "authenticator": "password", "captcha_id": key,
            "captcha_answer": answer}
    assert "incorrect" in flow.client.post(url, data).content.decode()
    replay = flow.client.post(url, {**data, "password": PASSWORD})
    assert replay.status_code == 400
    assert "The captcha answer is wrong" in replay.content.decode()


def test_a_captcha_is_shown_after_ten_failures_from_one_ip_across_accounts(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = None
    for index in range(10):  # password spraying: two tries each at five accounts
        page = post(flow.client, url, f"victim{index // 2}@example.com", "Winter2026!", page=page)
        assert captcha_on(page.content.decode()) is None or index == 9
    fresh = flow.client.get(start(flow, confidential_app))
    assert captcha_on(fresh.content.decode())  # shown before the user types a new account
    refused = post(flow.client, url, "alice", PASSWORD, solve=False, page=fresh)
    assert form_errors(refused.content.decode()) == ["Solve the captcha to continue."]


def test_captcha_policy_always_and_off(flow, confidential_app, user, monkeypatch):
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(client_id=client_id, captcha="always"))
    url = start(flow, confidential_app)
    page = flow.client.get(url)
    assert captcha_on(page.content.decode())
    assert post(flow.client, url, "alice", PASSWORD, page=page).status_code == 303

    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(client_id=client_id, captcha="off"))
    flow.client.logout()
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 9)
    assert captcha_on(page.content.decode()) is None
    assert post(flow.client, url, "alice", PASSWORD, page=page).status_code == 303


def test_the_account_counter_folds_case_so_a_variant_does_not_escape_the_captcha(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 1)
    page = fail(flow.client, url, "ALICE", 1, page)
    page = fail(flow.client, url, "Ａｌｉｃｅ", 1, page)  # fullwidth: NFKC folds it too
    assert captcha_on(page.content.decode())
    assert "Solve the captcha" in post(flow.client, url, " Alice ", PASSWORD, solve=False, page=page).content.decode()


# -- lockout -------------------------------------------------------------------------------------------
def normalised(response: Any) -> str:
    """The page without what differs per browser anyway: the CSRF token, the interaction's id."""
    return re.sub(r"/sign-in/[^/]+/", "/sign-in/ID/", CSRF.sub("", response.content.decode()))


def test_ten_failures_lock_the_account_with_429_the_same_for_an_unknown_account(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 10)
    assert page.status_code == 400  # the tenth failure is still a plain failure
    locked = post(flow.client, url, "alice", PASSWORD, page=page)  # even the right password
    assert locked.status_code == 429
    retry_after = int(locked["Retry-After"])
    assert 890 <= retry_after <= 900
    assert "Try again in 15 min." in locked.content.decode()
    assert locked["X-Frame-Options"] == "DENY"

    stranger = Client()
    other = sign_in_url_from(authorize(stranger, authorize_params(confidential_app)))
    page = fail(stranger, other, "nobody@example.com", 10)
    unknown = post(stranger, other, "nobody@example.com", PASSWORD, page=page)
    assert unknown.status_code == 429
    assert abs(int(unknown["Retry-After"]) - retry_after) <= 2
    assert normalised(unknown) == normalised(locked)
    assert sorted(unknown.cookies) == sorted(locked.cookies)


def test_solving_the_captcha_does_not_lift_the_lockout(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 10)
    key = captcha_on(page.content.decode())
    assert key
    locked = post(flow.client, url, "alice", PASSWORD, page=page)  # a solved captcha, the right password
    assert locked.status_code == 429
    # Through the engine too: a correct answer to a fresh challenge changes nothing.
    interaction = Interaction.objects.get()
    request = browser_request(flow.client)
    from experience import captcha

    challenge = captcha.new_challenge()
    data = {"identifier": "alice", "password": PASSWORD,
            "captcha": {"id": challenge["id"], "answer": CaptchaStore.objects.get(hashkey=challenge["id"]).response}}
    with pytest.raises(EngineError) as error:
        engine.verify(request, interaction, Authenticator.objects.get(name="password"), data)
    assert error.value.code == "too_many_requests" and error.value.status == 429
    assert 0 < error.value.data["retry_after"] <= 900


def test_the_lockout_is_audited_once_without_the_password(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 12)
    assert page.status_code == 429
    events = AuditEvent.objects.filter(kind=AuditEvent.LOCKED_OUT)
    assert events.count() == 1
    event = events.get()
    assert event.identifier == "alice" and event.ip == "127.0.0.1" and event.reason == "too_many_failures"
    assert not AuditEvent.objects.filter(identifier__icontains="wrong password").exists()


def test_the_lockout_ends_after_its_time(flow, confidential_app, user, settings):
    settings.PORTCULLIS_LOCKOUT_SECONDS = 1
    settings.PORTCULLIS_RISK_WINDOW = 60  # the failures still count: the lock alone ends
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 10)
    assert post(flow.client, url, "alice", PASSWORD, page=page).status_code == 429
    time.sleep(2.1)
    page = flow.client.get(url)
    assert post(flow.client, url, "alice", PASSWORD, page=page).status_code == 303


def test_second_factor_failures_count_for_every_identifier_of_the_account(user, rf_request):
    for _ in range(10):
        risk.failed(rf_request, user=user)
    for identifier in ("alice", "ALICE@example.com", "+1 555 123 4567"):
        with pytest.raises(EngineError) as error:
            risk.check_lockout(rf_request, identifier)
        assert error.value.code == "too_many_requests"
    risk.check_lockout(rf_request, "bob")  # other accounts are untouched


def test_second_factor_guesses_lock_the_account(user, rf_request, pin_factor):
    """The attacker who has the password is identified; wrong PINs (a TOTP, a backup code) count for
    the account, and once it is locked even the right one is refused, whatever identifier comes next."""
    interaction = engine.start(rf_request)
    engine.verify(rf_request, interaction, Authenticator.objects.get(name="password"),
                  {"identifier": "alice", "password": PASSWORD})
    for _ in range(10):
        with pytest.raises(EngineError) as error:
            engine.verify_second_factor(rf_request, interaction, pin_factor, {"pin": "0000"})
        assert error.value.code == "invalid_code"
    with pytest.raises(EngineError) as error:
        engine.verify_second_factor(rf_request, interaction, pin_factor, {"pin": "2468"})
    assert error.value.code == "too_many_requests"
    with pytest.raises(EngineError) as error:
        engine.verify(rf_request, engine.start(rf_request), Authenticator.objects.get(name="password"),
                      {"identifier": "alice@example.com", "password": PASSWORD})
    assert error.value.code == "too_many_requests"


def test_an_unidentified_step_skips_the_captcha_but_not_the_lockout(user, rf_request):
    interaction = engine.start(rf_request)
    for _ in range(3):
        risk.failed(rf_request, "alice", interaction)
    assert interaction.state["captcha"] == {"required": True, "passed": False}
    with pytest.raises(EngineError) as error:
        risk.guard(rf_request, interaction, "alice", {})
    assert error.value.code == "required" and error.value.kind == "captcha_answer"
    assert set(error.value.data["captcha"]) == {"id", "url"}
    assert error.value.data["captcha"]["url"].startswith("http://testserver/captcha/image/")
    assert engine.describe(rf_request, Interaction.objects.get(pk=interaction.pk))["next_step"] == "captcha_required"
    risk.guard(rf_request, interaction, "", {"code_id": "x", "code": "123456"})  # a code's check: no captcha


def test_a_typo_account_needs_no_captcha_for_the_real_one(user, rf_request):
    interaction = engine.start(rf_request)
    for _ in range(3):
        risk.failed(rf_request, "alcie", interaction)
    engine.sign_in(rf_request, interaction, Authenticator.objects.get(name="password"),
                   {"identifier": "alice", "password": PASSWORD})
    assert Interaction.objects.get(pk=interaction.pk).completed_at


# -- API throttling --------------------------------------------------------------------------------------
def test_the_json_apis_allow_30_requests_a_minute_per_ip_and_endpoint(rf_request):
    for _ in range(30):
        risk.throttle(rf_request, "experience.password")
    with pytest.raises(EngineError) as error:
        risk.throttle(rf_request, "experience.password")
    assert error.value.code == "too_many_requests" and 1 <= error.value.data["retry_after"] <= 60
    risk.throttle(rf_request, "experience.code")  # another endpoint has its own count
    other = RequestFactory().post("/", REMOTE_ADDR="192.0.2.7")
    risk.throttle(other, "experience.password")  # another IP too


# -- settings ------------------------------------------------------------------------------------------------
def test_risk_settings_must_be_positive_integers(settings):
    settings.PORTCULLIS_LOCKOUT_THRESHOLD = 0
    settings.PORTCULLIS_CAPTCHA_IP_THRESHOLD = "10"
    problems = [message for message in run_checks() if message.id == "experience.E011"]
    assert len(problems) == 2


def test_thresholds_are_settings(flow, confidential_app, user, settings):
    settings.PORTCULLIS_CAPTCHA_ACCOUNT_THRESHOLD = 1
    settings.PORTCULLIS_LOCKOUT_THRESHOLD = 2
    url = start(flow, confidential_app)
    page = fail(flow.client, url, "alice", 1)
    assert captcha_on(page.content.decode())
    page = fail(flow.client, url, "alice", 1, page)
    assert post(flow.client, url, "alice", PASSWORD, page=page).status_code == 429


# -- fixtures ------------------------------------------------------------------------------------------------
def browser_request(client: Client) -> Any:
    request = RequestFactory().post("/sign-in/x/")
    request.session = SessionStore(client.session.session_key)
    request.user = AnonymousUser()
    return request


@pytest.fixture
def rf_request() -> Any:
    request = RequestFactory().post("/sign-in/x/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


@pytest.fixture
def pin_factor(user: Any, monkeypatch: Any) -> Any:
    from authenticators.models import UserAuthenticator
    from authenticators.registry import registry
    from experience.policy import MfaPolicy
    from tests.test_engine import PinFactorAuth

    registry.register("test-pin", PinFactorAuth, replace=True)
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(
        client_id=client_id, mfa=MfaPolicy(policy="optional", factors=("test-pin",))))
    authenticator = Authenticator.objects.create(name="pin", auth_type="test-pin", title="PIN", sort_order=6)
    UserAuthenticator.objects.create(authenticator=authenticator, user=user, uuid=str(user.pk), meta={"pin": "2468"})
    yield authenticator
    registry.unregister("test-pin")
