"""Attacks on the headless Identity API (SPEC §3: login-by-password, check-code, send-code, login):
applications that may not use it, forged or missing client credentials, stolen, replayed and raced
handles (``data_2fa``, ``code_id``), enumeration, lockouts, rate limits, audit and token ownership."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from captcha.models import CaptchaStore
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken

from experience.models import AuditEvent, Interaction
from identity.models import ApplicationSettings
from tests.helpers import (
    PASSWORD,
    ClientApp,
    basic_auth,
    checksum,
    code_in_mail,
    credentials,
    make_application,
    refresh,
    run_together,
    totp_now,
)

LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"
CHECK_CODE = "/api/authorization/check-code"
SEND_CODE = "/api/authorization/send-code"
LOGIN = "/api/authorization/login"
OPERATIONS = [LOGIN_BY_PASSWORD, CHECK_CODE, SEND_CODE, LOGIN]
WRONG = "wrong password"


@pytest.fixture
def app(db: Any) -> ClientApp:
    """A confidential first-party application allowed the headless API."""
    return make_application(name="Shop", headless=True)


@pytest.fixture
def other(db: Any) -> ClientApp:
    """Another confidential first-party headless application (the attacker's own registration)."""
    return make_application(name="Other shop", headless=True)


def post(client: Any, path: str, body: Any, **headers: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def error(response: Any) -> tuple[str, str]:
    body = response.json()
    assert len(body) == 1, body
    kind = next(iter(body))
    assert body[kind]["message"], body
    return kind, body[kind]["code"]


def login_by_password(client: Any, app: ClientApp, email: str = "alice@example.com", password: str = PASSWORD,
                      **extra: Any) -> Any:
    return post(client, LOGIN_BY_PASSWORD, {**credentials(app), "email": email, "password": password, **extra})


def attempt(client: Any, app: ClientApp, email: str, password: str) -> Any:
    """A login-by-password that answers the captcha it is asked for (read from the store, as a person
    reads the picture): the final response."""
    response = login_by_password(client, app, email, password)
    if response.status_code == 400 and error(response) == ("captcha_answer", "required"):
        key = response.json()["captcha_answer"]["captcha"]["id"]
        answer = CaptchaStore.objects.get(hashkey=key).response
        response = login_by_password(client, app, email, password, captcha={"id": key, "answer": answer})
    return response


def fail(client: Any, app: ClientApp, email: str, times: int) -> None:
    for _ in range(times):
        response = attempt(client, app, email, WRONG)
        assert response.status_code == 400 and error(response) == ("key", "invalid_credentials"), response.content


def bodies(app: ClientApp) -> dict[str, dict[str, Any]]:
    """A well-formed body of each operation for ``app`` (handles made up)."""
    return {
        LOGIN_BY_PASSWORD: {**credentials(app), "email": "alice@example.com", "password": PASSWORD},
        CHECK_CODE: {**credentials(app), "data_2fa": "x" * 43, "code": "123456"},
        SEND_CODE: {**credentials(app), "email": "alice@example.com"},
        LOGIN: {**credentials(app), "code_id": "x" * 43, "code": "123456"},
    }


def data_2fa_for(client: Any, app: ClientApp) -> str:
    response = login_by_password(client, app)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"data_2fa", "timeout", "methods"}, response.json()
    return str(response.json()["data_2fa"])


def send_code(client: Any, app: ClientApp, email: str = "alice@example.com") -> Any:
    return post(client, SEND_CODE, {**credentials(app), "email": email})


def code_sent(client: Any, app: ClientApp, mailoutbox: Any) -> tuple[str, str]:
    response = send_code(client, app)
    assert response.status_code == 200, response.content
    return response.json()["code_id"], code_in_mail(mailoutbox[-1])


# -- applications that may not use the API ----------------------------------------------------------------
@pytest.mark.parametrize(("first_party", "headless_api"), [(True, False), (False, True), (False, False)])
def test_an_application_not_allowed_the_headless_api_is_forbidden_on_every_operation(
        client, user, mail_code, first_party, headless_api):
    refused = make_application(first_party=first_party, name="Not headless")
    ApplicationSettings.objects.filter(application=refused.application).update(headless_api=headless_api)
    for path, body in bodies(refused).items():
        response = post(client, path, body)
        assert response.status_code == 403, (path, response.content)
        assert error(response) == ("forbidden", "headless_not_allowed"), path
    assert not Interaction.objects.exists()
    assert not AccessToken.objects.exists()


# -- client authentication --------------------------------------------------------------------------------
def test_a_confidential_client_that_cannot_authenticate_gets_one_invalid_client_everywhere(client, user, app):
    answers = []
    for path, body in bodies(app).items():
        without = {key: value for key, value in body.items() if key != "client_secret"}
        cases = {
            "no secret": (without, {}),
            "wrong secret in the body": ({**without, "client_secret": "wrong"}, {}),
            "wrong secret by HTTP Basic": (without, {"HTTP_AUTHORIZATION": basic_auth(app, "wrong")}),
            "unknown client_id": ({**without, "client_id": "unknown-app"}, {}),
        }
        if path in (CHECK_CODE, LOGIN):  # their client_id is optional: a made-up handle names no one
            cases["no client_id"] = ({key: value for key, value in without.items() if key != "client_id"}, {})
        for label, (data, headers) in cases.items():
            response = post(client, path, data, **headers)
            assert response.status_code == 401, (path, label, response.content)
            assert error(response) == ("key", "invalid_client"), (path, label)
            assert response["WWW-Authenticate"].startswith("Basic")
            answers.append(response.json())
    assert all(answer == answers[0] for answer in answers), answers  # no oracle: one answer for all
    assert not Interaction.objects.exists()


def test_the_secret_in_the_body_and_by_http_basic_at_once_is_refused(client, user, app):
    response = post(client, LOGIN_BY_PASSWORD, bodies(app)[LOGIN_BY_PASSWORD], HTTP_AUTHORIZATION=basic_auth(app))
    assert response.status_code == 401 and error(response) == ("key", "invalid_client")
    assert not AccessToken.objects.exists()
    basic = post(client, LOGIN_BY_PASSWORD, {"client_id": app.client_id, "email": "alice@example.com",
                                             "password": PASSWORD}, HTTP_AUTHORIZATION=basic_auth(app))
    assert basic.status_code == 200, basic.content  # either method alone works


def test_http_basic_names_the_application_without_a_client_id_in_the_body(client, user, app, mail_code):
    login = {"email": "alice@example.com", "password": PASSWORD}
    named = post(client, LOGIN_BY_PASSWORD, login, HTTP_AUTHORIZATION=basic_auth(app))
    assert named.status_code == 200 and AccessToken.objects.get().application == app.application
    sent = post(client, SEND_CODE, {"email": "alice@example.com"}, HTTP_AUTHORIZATION=basic_auth(app))
    assert sent.status_code == 200 and sent.json()["code_id"]
    for path, body in ((LOGIN_BY_PASSWORD, login), (SEND_CODE, {"email": "alice@example.com"})):
        anonymous = post(client, path, body)  # neither the body nor Basic names an application
        assert anonymous.status_code == 400 and list(anonymous.json()["validation"]["fields"]) == ["client_id"]


# -- data_2fa --------------------------------------------------------------------------------------------------
def check_code(client: Any, app: ClientApp, handle: str, code: str | None = None) -> Any:
    return post(client, CHECK_CODE, {**credentials(app), "data_2fa": handle, "code": code or totp_now(),
                                     "method": "totp"})


def test_a_data_2fa_is_single_use(client, totp_user, app):
    handle = data_2fa_for(client, app)
    assert check_code(client, app, handle).status_code == 200
    again = check_code(client, app, handle, totp_now(steps_ahead=1))
    assert again.status_code == 400 and error(again) == ("key", "data_2fa_expired")
    assert AccessToken.objects.count() == 1


def test_an_expired_data_2fa_is_refused(client, totp_user, app):
    handle = data_2fa_for(client, app)
    Interaction.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = check_code(client, app, handle)
    assert response.status_code == 400 and error(response) == ("key", "data_2fa_expired")
    assert not AccessToken.objects.exists()


def test_another_application_cannot_use_a_data_2fa_and_the_owner_still_can(client, totp_user, app, other):
    handle = data_2fa_for(client, app)
    for headers, body in (({}, credentials(other)),
                          ({"HTTP_AUTHORIZATION": basic_auth(other)}, {"client_id": other.client_id})):
        stolen = post(client, CHECK_CODE, {**body, "data_2fa": handle, "code": totp_now()}, **headers)
        assert stolen.status_code == 400 and error(stolen) == ("key", "data_2fa_expired")
    # The owner's client_id with the other application's secret is no way in either.
    forged = post(client, CHECK_CODE, {"client_id": app.client_id, "client_secret": other.client_secret,
                                       "data_2fa": handle, "code": totp_now()})
    assert forged.status_code == 401 and error(forged) == ("key", "invalid_client")
    assert not AccessToken.objects.exists()
    own = check_code(client, app, handle)
    assert own.status_code == 200, own.content
    assert AccessToken.objects.get().application == app.application


def test_a_made_up_data_2fa_is_refused_as_an_expired_one(client, totp_user, app):
    real = data_2fa_for(client, app)
    for handle in ("x" * 43, real[:-1] + ("A" if real[-1] != "A" else "B"), "\u00e9" * 10):
        response = check_code(client, app, handle)
        assert response.status_code == 400 and error(response) == ("key", "data_2fa_expired"), handle
    assert not AccessToken.objects.exists()


def test_concurrent_check_codes_with_one_data_2fa_sign_in_once(transactional_db, totp_user, app):
    """Four copies of one correct answer at once (fewer than the five wrong codes that would spend
    the Data2fa): exactly one UserToken; the replays are wrong codes."""
    handle = data_2fa_for(Client(), app)
    code = totp_now()

    def answer(index: int) -> tuple[int, str]:
        response = check_code(Client(), app, handle, code)
        return response.status_code, "" if response.status_code == 200 else error(response)[1]

    results = run_together(4, answer)
    assert [status for status, _code in results].count(200) == 1, results
    assert {code for status, code in results if status != 200} <= {"invalid_code", "data_2fa_expired"}, results
    assert AccessToken.objects.count() == 1


def test_a_wrong_code_for_a_data_2fa_a_parallel_request_finished_is_data_2fa_expired(client, totp_user, app,
                                                                                    monkeypatch):
    """The loser of a race (its code checked while the winner finished the Data2fa) is told the
    Data2fa is used up, not that it spent the attempts (regression: it answered attempts_exceeded)."""
    from experience.errors import EngineError

    handle = data_2fa_for(client, app)

    def raced(request: Any, interaction: Any, *args: Any, **kwargs: Any) -> None:
        Interaction.objects.filter(uid=interaction.uid).update(completed_at=timezone.now())  # the winner
        raise EngineError("invalid_code")  # this request's replayed code

    monkeypatch.setattr("experience.interaction.verify_second_factor", raced)
    response = check_code(client, app, handle)
    assert response.status_code == 400 and error(response) == ("key", "data_2fa_expired")


# -- code_id ------------------------------------------------------------------------------------------------------
def login(client: Any, app: ClientApp, code_id: str, code: str) -> Any:
    return post(client, LOGIN, {**credentials(app), "code_id": code_id, "code": code})


def test_a_code_id_is_single_use(client, user, app, mail_code, mailoutbox):
    code_id, code = code_sent(client, app, mailoutbox)
    first = login(client, app, code_id, code)
    assert first.status_code == 200, first.content
    again = login(client, app, code_id, code)
    assert again.status_code == 400 and error(again) == ("key", "invalid_code")
    assert AccessToken.objects.count() == 1


def test_another_application_cannot_use_a_code_id_and_the_owner_still_can(client, user, app, other, mail_code,
                                                                       mailoutbox):
    code_id, code = code_sent(client, app, mailoutbox)
    stolen = login(client, other, code_id, code)
    assert stolen.status_code == 400 and error(stolen) == ("key", "invalid_code")
    by_basic = post(client, LOGIN, {"client_id": other.client_id, "code_id": code_id, "code": code},
                    HTTP_AUTHORIZATION=basic_auth(other))
    assert by_basic.status_code == 400 and error(by_basic) == ("key", "invalid_code")
    # Without client_id the code names its owner, whose secret the other application does not have.
    named = post(client, LOGIN, {"code_id": code_id, "code": code}, HTTP_AUTHORIZATION=basic_auth(other))
    assert named.status_code == 400 and error(named) == ("key", "invalid_code")
    assert not AccessToken.objects.exists()
    own = login(client, app, code_id, code)
    assert own.status_code == 200, own.content
    assert AccessToken.objects.get().application == app.application


def test_concurrent_logins_with_one_code_id_sign_in_exactly_once(transactional_db, user, app, mail_code, mailoutbox):
    code_id, code = code_sent(Client(), app, mailoutbox)

    def redeem(index: int) -> tuple[int, str]:
        response = login(Client(), app, code_id, code)
        return response.status_code, "" if response.status_code == 200 else error(response)[1]

    results = run_together(4, redeem)
    assert [status for status, _code in results].count(200) == 1, results
    assert all(status in (200, 400) for status, _code in results), results
    assert AccessToken.objects.count() == 1


# -- enumeration ----------------------------------------------------------------------------------------------------
def test_an_unknown_e_mail_and_a_wrong_password_get_the_same_answer(client, user, app):
    wrong = login_by_password(client, app, "alice@example.com", WRONG)
    unknown = login_by_password(client, app, "nobody@example.com", WRONG)
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json() and error(wrong) == ("key", "invalid_credentials")
    assert sorted(wrong.headers) == sorted(unknown.headers)


def test_a_disabled_account_is_refused_exactly_as_a_wrong_password(client, user, app):
    wrong = login_by_password(client, app, "alice@example.com", WRONG)
    user.is_active = False
    user.save(update_fields=["is_active"])
    disabled = login_by_password(client, app)  # the right password
    assert disabled.status_code == wrong.status_code == 400
    assert disabled.json() == wrong.json()
    assert not AccessToken.objects.exists()


def test_send_code_answers_the_same_for_an_unknown_address_and_mails_nobody(client, user, app, mail_code, mailoutbox):
    known = send_code(client, app, "alice@example.com")
    unknown = send_code(client, app, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert set(known.json()) == set(unknown.json()) == {"code_id", "timeout", "resend_after"}
    assert {**known.json(), "code_id": ""} == {**unknown.json(), "code_id": ""}
    assert len(known.json()["code_id"]) == len(unknown.json()["code_id"])
    assert [[address.lower() for address in message.to] for message in mailoutbox] == [["alice@example.com"]]
    # The unknown address's code_id signs nobody in.
    guessed = login(client, app, unknown.json()["code_id"], "000000")
    assert guessed.status_code == 400 and error(guessed) == ("key", "invalid_code")
    # The cool-down answers alike too.
    known_again = send_code(client, app, "alice@example.com")
    unknown_again = send_code(client, app, "nobody@example.com")
    assert known_again.status_code == unknown_again.status_code == 429
    assert error(known_again) == error(unknown_again) == ("rate_limited", "too_many_requests")
    assert len(mailoutbox) == 1


# -- lockout ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def unthrottled(settings: Any) -> None:
    """A lockout takes more requests than the per-IP limit allows a minute: lift that one."""
    settings.PORTCULLIS_API_RATE_LIMIT = 10_000


def locked_body(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.content
    assert error(response) == ("rate_limited", "too_many_requests")
    body = response.json()
    retry_after = body["rate_limited"]["retry_after"]
    assert int(response["Retry-After"]) == retry_after and 60 < retry_after <= 900
    return {"rate_limited": {**body["rate_limited"], "retry_after": 0}}


def test_ten_failures_lock_the_account_even_for_the_right_password(client, user, app, unthrottled):
    fail(client, app, "alice@example.com", 10)
    locked = attempt(client, app, "alice@example.com", PASSWORD)
    locked_body(locked)
    assert not AccessToken.objects.exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.LOCKED_OUT).count() == 1


def test_a_solved_captcha_does_not_lift_the_lockout(client, user, app, unthrottled):
    from experience import captcha

    fail(client, app, "alice@example.com", 10)
    challenge = captcha.new_challenge()
    answer = CaptchaStore.objects.get(hashkey=challenge["id"]).response
    locked = login_by_password(client, app, captcha={"id": challenge["id"], "answer": answer})
    locked_body(locked)
    assert not AccessToken.objects.exists()


def test_the_lockout_answers_the_same_for_an_existing_and_an_unknown_account(client, user, app, unthrottled):
    fail(client, app, "alice@example.com", 10)
    fail(client, app, "nobody@example.com", 10)
    existing = attempt(client, app, "alice@example.com", PASSWORD)
    unknown = attempt(client, app, "nobody@example.com", PASSWORD)
    assert locked_body(existing) == locked_body(unknown)  # retry_after aside: each lock started when it did
    assert sorted(existing.headers) == sorted(unknown.headers)


# -- rate limits ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", OPERATIONS)
def test_each_operation_allows_30_requests_a_minute_per_ip(client, db, path, settings):
    settings.PORTCULLIS_API_RATE_WINDOW = 10**9  # one window for the whole test (no minute boundary)
    body = {key: value for key, value in bodies(ClientApp(None, "unknown-app", None))[path].items()}
    for _ in range(30):
        assert post(client, path, body).status_code == 401
    limited = post(client, path, body)
    assert limited.status_code == 429 and error(limited) == ("rate_limited", "too_many_requests")
    assert int(limited["Retry-After"]) == limited.json()["rate_limited"]["retry_after"] > 0
    other_path = next(other for other in OPERATIONS if other != path)
    assert post(client, other_path, {"client_id": "unknown-app"}).status_code != 429  # each endpoint counts alone
    from_elsewhere = post(client, path, body, REMOTE_ADDR="198.51.100.7")
    assert from_elsewhere.status_code == 401  # and each IP


def test_send_code_keeps_each_addresses_budget(client, user, app, mail_code, mailoutbox, settings):
    assert send_code(client, app).status_code == 200
    cooling = send_code(client, app)
    assert cooling.status_code == 429 and error(cooling) == ("rate_limited", "too_many_requests")
    assert 0 < int(cooling["Retry-After"]) == cooling.json()["rate_limited"]["retry_after"] <= 60
    assert len(mailoutbox) == 1
    assert send_code(client, app, "bob@example.com").status_code == 200  # another address has its own
    # Past the cool-down, the daily limit.
    settings.PORTCULLIS_CODE_COOLDOWN = 0
    settings.PORTCULLIS_CODE_DAILY_LIMIT = 2
    assert send_code(client, app).status_code == 200
    daily = send_code(client, app)
    assert daily.status_code == 429 and error(daily) == ("rate_limited", "too_many_requests")
    assert int(daily["Retry-After"]) > 0
    assert len([message for message in mailoutbox if message.to[0].lower() == "alice@example.com"]) == 2


# -- audit ------------------------------------------------------------------------------------------------------------------
def test_logins_by_password_are_audited_with_the_application_and_no_secret(client, user, app):
    assert login_by_password(client, app, password=WRONG).status_code == 400
    assert login_by_password(client, app).status_code == 200
    failed = AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_FAILED)
    succeeded = AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_SUCCEEDED)
    assert failed.count() == 1 and succeeded.count() == 1
    assert failed.get().client_id == succeeded.get().client_id == app.client_id
    assert succeeded.get().user == user
    for event in AuditEvent.objects.all():
        values = " ".join(str(getattr(event, field.attname)) for field in AuditEvent._meta.fields)
        assert PASSWORD not in values and WRONG not in values and app.client_secret not in values, values


def test_code_logins_are_audited_without_the_code(client, user, app, mail_code, mailoutbox):
    code_id, code = code_sent(client, app, mailoutbox)
    assert login(client, app, code_id, "000000" if code != "000000" else "111111").status_code == 400
    assert login(client, app, code_id, code).status_code == 200
    assert AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_SUCCEEDED, client_id=app.client_id).count() == 1
    for event in AuditEvent.objects.all():
        values = " ".join(str(getattr(event, field.attname)) for field in AuditEvent._meta.fields)
        assert code not in values and code_id not in values, values


# -- tokens ------------------------------------------------------------------------------------------------------------------
def test_the_tokens_belong_to_the_calling_application_and_another_cannot_refresh_them(client, user, app, other):
    response = login_by_password(client, app)
    assert response.status_code == 200, response.content
    token = response.json()
    access = AccessToken.objects.get(token_checksum=checksum(token["access_token"]))
    assert access.application == app.application and access.user == user
    stolen = refresh(client, other, token["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    own = refresh(client, app, token["refresh_token"])
    assert own.status_code == 200, own.content


# -- faults --------------------------------------------------------------------------------------------------
def test_a_provider_that_cannot_take_the_code_is_a_documented_503_and_the_code_is_forgotten(client, user, app,
                                                                                               settings):
    from authenticators.models import Authenticator, OneTimeCode

    Authenticator.objects.update_or_create(name="sms-code", defaults={
        "auth_type": "sms-code", "title": "SMS code", "enabled": True, "sort_order": 6})
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.HttpSmsBackend"
    settings.PORTCULLIS_SMS_HTTP_URL = "http://127.0.0.1:9/unreachable"  # the discard port: refused
    from identity.models import Profile

    profile = Profile.objects.get(user=user)
    profile.phone_number = "+14155552671"
    profile.save()  # a save: the sign-in identifiers follow it
    response = post(client, SEND_CODE, {**credentials(app), "phone_number": "+14155552671"})
    assert response.status_code == 503 and error(response) == ("unavailable", "delivery_failed"), response.content
    assert not OneTimeCode.objects.exists()  # no cool-down and no live code_id for a code that never left
    documented = client.get("/api/schema/?format=json").json()["paths"][SEND_CODE]["post"]["responses"]
    assert "503" in documented
