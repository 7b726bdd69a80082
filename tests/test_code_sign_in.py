"""Sign-in by a one-time code (``email-code``, ``sms-code``) on the hosted page, as a user meets it,
and the attacks the code rules stop."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from authenticators.models import Authenticator, OneTimeCode
from experience.models import AuditEvent
from identity.models import Profile
from tests.helpers import (
    REDIRECT_URI,
    authorize_params,
    form_errors,
    pkce_pair,
    query_of,
    sign_in_url_from,
    verify_id_token,
)

pytestmark = pytest.mark.django_db

PHONE = "+14155552671"


@pytest.fixture
def sms_enabled(db):
    Authenticator.objects.filter(name="sms-code").update(enabled=True)


@pytest.fixture
def phone_user(user):
    profile = Profile.objects.get(user=user)
    profile.phone_number, profile.phone_number_verified = PHONE, False
    profile.save()  # a save, not an update: the sign-in identifiers follow it
    return user


def start(flow, app, **extra):
    response = flow.authorize(authorize_params(app, **extra))
    assert response.status_code == 303
    return sign_in_url_from(response)


def send(client, url, authenticator="email-code", **data):
    return client.post(f"{url}?authenticator={authenticator}", {"authenticator": authenticator, "action": "send", **data})


def resend(client, url, authenticator="email-code"):
    return client.post(f"{url}?authenticator={authenticator}", {"authenticator": authenticator, "action": "resend"})


def enter(client, url, code, authenticator="email-code", code_id=None):
    if code_id is None:
        code_id = code_id_on(client.get(f"{url}?authenticator={authenticator}").content.decode())
    return client.post(f"{url}?authenticator={authenticator}",
                       {"authenticator": authenticator, "code_id": code_id, "code": code})


def code_id_on(html):
    match = re.search(r'<input type="hidden" name="code_id" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def email_code(index=-1):
    return re.search(r"\b(\d{6})\b", mail.outbox[index].body).group(1)


def sms_code(outbox, index=-1):
    return re.search(r"\b(\d{6})\b", outbox[index].body).group(1)


def wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


def input_tag(html, name):
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, html
    return match.group(0)


def finish(flow, app, params, verifier, response):
    """From the 303 after the code: the authorization endpoint's code, redeemed for tokens."""
    assert response.status_code == 303, response.content
    onward = flow.client.get(response["Location"])
    assert onward.status_code == 302 and onward["Location"].startswith(REDIRECT_URI + "?"), onward
    token = flow.token(app, query_of(onward["Location"])["code"], params, code_verifier=verifier)
    assert token.status_code == 200, token.content
    return verify_id_token(flow.client, token.json()["id_token"])


# -- the flows ------------------------------------------------------------------------------------------
def test_email_code_sign_in_ends_with_tokens_whose_amr_says_otp(flow, confidential_app, user):
    Profile.objects.filter(user=user).update(email_verified=False)
    verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, challenge)
    url = sign_in_url_from(flow.authorize(params))

    page = flow.client.get(url).content.decode()
    assert '?authenticator=email-code">E-mail code</a>' in page  # a tab beside the password
    address_step = flow.client.get(f"{url}?authenticator=email-code").content.decode()
    email = input_tag(address_step, "email")
    assert 'type="email"' in email and 'autocomplete="email"' in email
    assert re.search(r'<label for="id_email">E-mail</label>', address_step)
    assert ">Send code</button>" in address_step

    sent = send(flow.client, url, email="ALICE@example.com")
    assert sent.status_code == 303 and sent["Location"] == f"{url}?authenticator=email-code"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["Alice@example.com"]  # the account's own address
    message = mail.outbox[0]
    assert message.subject == "Your sign-in code for Relying party"
    code = email_code()
    assert "Your sign-in code is " + code in message.body

    code_step = flow.client.get(sent["Location"]).content.decode()
    assert "We sent a code to ALICE@example.com. Enter it below." in code_step
    field = input_tag(code_step, "code")
    assert 'autocomplete="one-time-code"' in field and 'inputmode="numeric"' in field
    assert re.search(r'<label for="id_code">Code</label>', code_step)
    assert ">Resend code</button>" in code_step and 'name="action" value="resend"' in code_step
    assert ">Use another method</a>" in code_step and "?authenticator=password" in code_step
    assert ">Use another e-mail address</a>" in code_step

    before = flow.client.session.session_key
    response = enter(flow.client, url, code, code_id=code_id_on(code_step))
    assert flow.client.session.session_key != before
    claims = finish(flow, confidential_app, params, verifier, response)
    assert claims["amr"] == ["otp"]
    assert claims["email_verified"] is True  # the code proved the address


def test_sms_code_sign_in_normalises_the_number_and_says_sms_and_otp(flow, confidential_app, phone_user,
                                                                        sms_enabled, sms_outbox):
    verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, challenge)
    url = sign_in_url_from(flow.authorize(params))
    address_step = flow.client.get(f"{url}?authenticator=sms-code").content.decode()
    phone = input_tag(address_step, "phone_number")
    assert 'type="tel"' in phone and 'autocomplete="tel"' in phone

    sent = send(flow.client, url, "sms-code", phone_number="+1 (415) 555-2671")
    assert sent.status_code == 303
    assert [message.to for message in sms_outbox] == [PHONE]
    code = sms_code(sms_outbox)
    assert sms_outbox[0].body.startswith(f"{code} is your Relying party sign-in code.")
    assert sms_outbox[0].body.endswith(f"@testserver #{code}")  # the origin-bound line of one-time-code autofill
    assert "We sent a code to +14155552671." in flow.client.get(sent["Location"]).content.decode()

    claims = finish(flow, confidential_app, params, verifier, enter(flow.client, url, code, "sms-code"))
    assert claims["amr"] == ["otp", "sms"]
    assert claims["phone_number"] == PHONE and claims["phone_number_verified"] is True


def test_a_malformed_phone_number_is_a_field_error(flow, confidential_app, user, sms_enabled, sms_outbox):
    url = start(flow, confidential_app)
    response = send(flow.client, url, "sms-code", phone_number="12")
    assert response.status_code == 400
    assert form_errors(response.content.decode()) == [
        "Phone number: Enter the phone number in international format, e.g. +15551234567."]
    assert sms_outbox == []


def test_a_disabled_code_type_cannot_be_used_by_posting_its_name(flow, confidential_app, phone_user, sms_outbox):
    url = start(flow, confidential_app)
    assert "?authenticator=sms-code" not in flow.client.get(url).content.decode()
    response = send(flow.client, url, "sms-code", phone_number=PHONE)
    assert response.status_code == 400
    assert "This sign-in method is not available." in response.content.decode()
    assert sms_outbox == [] and OneTimeCode.objects.count() == 0


# -- attacks -------------------------------------------------------------------------------------------
def test_five_wrong_guesses_spend_the_code(flow, confidential_app, user):
    url = start(flow, confidential_app)
    send(flow.client, url, email="alice@example.com")
    code = email_code()
    answers = []
    for _ in range(5):
        response = enter(flow.client, url, wrong(code))
        assert response.status_code == 400
        answers.append(form_errors(response.content.decode()))
    assert answers == [["The code is incorrect."]] * 4 + [["Too many wrong codes. Ask for a new one."]]
    response = enter(flow.client, url, code)
    assert response.status_code == 400
    assert form_errors(response.content.decode()) == ["Too many wrong codes. Ask for a new one."]
    assert "_auth_user_id" not in flow.client.session


def test_an_expired_code_is_refused(flow, confidential_app, user):
    url = start(flow, confidential_app)
    send(flow.client, url, email="alice@example.com")
    OneTimeCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = enter(flow.client, url, email_code())
    assert response.status_code == 400
    assert form_errors(response.content.decode()) == ["The code has expired. Ask for a new one."]


def test_a_used_code_is_refused_the_second_time(flow, confidential_app, user):
    url = start(flow, confidential_app)
    send(flow.client, url, email="alice@example.com")
    code = email_code()
    code_id = code_id_on(flow.client.get(f"{url}?authenticator=email-code").content.decode())
    assert enter(flow.client, url, code, code_id=code_id).status_code == 303
    flow.client.logout()
    again = start(flow, confidential_app)
    response = enter(flow.client, again, code, code_id=code_id)
    assert response.status_code == 400
    assert form_errors(response.content.decode()) == ["The code is incorrect."]


def test_a_code_of_another_interaction_is_refused(flow, confidential_app, user):
    first = start(flow, confidential_app)
    second = start(flow, confidential_app)
    send(flow.client, first, email="alice@example.com")
    code = email_code()
    code_id = code_id_on(flow.client.get(f"{first}?authenticator=email-code").content.decode())
    response = enter(flow.client, second, code, code_id=code_id)
    assert response.status_code == 400
    assert form_errors(response.content.decode()) == ["The code is incorrect."]
    assert OneTimeCode.objects.get().attempts == 0  # not even a guess at the other interaction's code
    assert enter(flow.client, first, code).status_code == 303  # its own interaction still signs in


def test_resending_waits_for_the_cool_down_per_address(flow, confidential_app, user):
    url = start(flow, confidential_app)
    send(flow.client, url, email="alice@example.com")
    page = flow.client.get(f"{url}?authenticator=email-code").content.decode()
    wait = re.search(r"You can ask for a new code in (\d+) s\.", page)
    assert wait and 0 < int(wait.group(1)) <= 60
    response = resend(flow.client, url)
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 60
    html = response.content.decode()
    assert re.fullmatch(r"Wait \d+ s before asking for a new code\.", form_errors(html)[0])
    assert 'name="code"' in html  # still the code step
    assert len(mail.outbox) == 1
    # Another interaction (a new tab, or an attacker's) does not reset it either.
    other = Client()
    response = send(other, start(type(flow)(other), confidential_app), email="Alice@Example.com")
    assert response.status_code == 429 and len(mail.outbox) == 1

    OneTimeCode.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert resend(flow.client, url).status_code == 303
    assert len(mail.outbox) == 2
    assert enter(flow.client, url, email_code()).status_code == 303


def test_the_cool_down_holds_per_account_across_its_addresses(flow, confidential_app, phone_user, sms_enabled,
                                                             sms_outbox):
    url = start(flow, confidential_app)
    assert send(flow.client, url, email="alice@example.com").status_code == 303
    response = send(flow.client, url, "sms-code", phone_number=PHONE)  # the same account's phone
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 60
    assert sms_outbox == []
    # Another account's address is not held up.
    assert send(flow.client, url, "sms-code", phone_number="+14155550100").status_code == 303
    OneTimeCode.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert send(flow.client, url, "sms-code", phone_number=PHONE).status_code == 303
    assert [message.to for message in sms_outbox] == [PHONE]


def test_the_daily_limit_per_address_holds(flow, confidential_app, user, settings):
    settings.PORTCULLIS_CODE_DAILY_LIMIT = 2
    url = start(flow, confidential_app)
    for _ in range(2):
        assert send(flow.client, url, email="alice@example.com").status_code == 303
        OneTimeCode.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    response = send(flow.client, url, email="alice@example.com")
    assert response.status_code == 429 and int(response["Retry-After"]) == 86400
    assert form_errors(response.content.decode()) == [
        "Too many codes were sent here today. Try again tomorrow, or use another method."]


def normalised(response, address, url):
    html = response.content.decode().replace(address, "ADDRESS").replace(url, "URL")
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)
    html = re.sub(r"new code in \d+ s\.", "new code in N s.", html)  # the clock, not the account
    return re.sub(r'name="code_id" value="[^"]+"', "CODE_ID", html)


def cookies_of(response):
    return sorted((name, morsel["max-age"], morsel["httponly"], morsel["samesite"]) for name, morsel in response.cookies.items())


def test_an_unknown_address_gets_the_same_answer_and_nothing_is_sent(confidential_app, user, flow):
    answers = {}
    for address in ("alice@example.com", "nobody@example.com"):
        client = Client()
        url = start(type(flow)(client), confidential_app)
        client.get(url)
        sent = send(client, url, email=address)
        shown = client.get(sent["Location"])
        wrong_code = enter(client, url, "000000")
        answers[address] = (sent.status_code, sent["Location"].replace(url, "URL"), cookies_of(sent),
                            shown.status_code, normalised(shown, address, url), cookies_of(shown),
                            wrong_code.status_code, normalised(wrong_code, address, url))
    assert answers["alice@example.com"] == answers["nobody@example.com"]
    assert [message.to for message in mail.outbox] == [["Alice@example.com"]]


def test_no_code_in_logs_or_audit_events(flow, confidential_app, user, caplog):
    caplog.set_level(logging.DEBUG)
    url = start(flow, confidential_app)
    send(flow.client, url, email="alice@example.com")
    code = email_code()
    enter(flow.client, url, wrong(code))
    assert enter(flow.client, url, code).status_code == 303
    assert caplog.records and code not in caplog.text
    events = list(AuditEvent.objects.order_by("pk").values_list("kind", "identifier", "reason", "user"))
    assert events == [
        ("code.sent", "alice@example.com", "", user.pk),
        ("code.failed", "", "invalid_code", None),
        ("sign_in.new_device", "alice", "", user.pk),  # the account's first browser: audited, no e-mail
        ("sign_in.succeeded", "alice", "", user.pk),
    ]
    stored = repr(list(AuditEvent.objects.values())) + repr(list(OneTimeCode.objects.values()))
    assert code not in stored


def test_a_code_sent_to_an_unknown_address_is_audited_as_such(flow, confidential_app, user):
    send(flow.client, start(flow, confidential_app), email="nobody@example.com")
    assert list(AuditEvent.objects.values_list("kind", "identifier", "reason")) == [
        ("code.sent", "nobody@example.com", "no_account")]


def test_a_provider_failure_is_a_clean_error_and_the_code_is_forgotten(flow, confidential_app, phone_user,
                                                                      sms_enabled, settings):
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.HttpSmsBackend"
    settings.PORTCULLIS_SMS_HTTP_URL = "http://127.0.0.1:9/unreachable"  # the discard port: refused
    url = start(flow, confidential_app)
    response = send(flow.client, url, "sms-code", phone_number=PHONE)
    assert response.status_code == 503
    assert form_errors(response.content.decode()) == ["The code could not be sent just now. Try again in a few minutes."]
    assert OneTimeCode.objects.count() == 0  # no cool-down for a code that never left
    assert AuditEvent.objects.get().reason == "delivery_failed"


@pytest.mark.django_db(transaction=True)
def test_parallel_sends_to_one_account_pass_once(django_user_model, sms_outbox, settings):
    """Ten requests at once, to the e-mail and the phone of one account: one code leaves."""
    from authenticators.base import AuthError
    from tests.helpers import run_together

    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.LocmemSmsBackend"
    account = django_user_model.objects.create_user("carol", "carol@example.com", "a long enough passphrase")
    Profile.objects.create(user=account, phone_number=PHONE)
    email, _ = Authenticator.objects.update_or_create(name="email-code", defaults={
        "auth_type": "email-code", "title": "E-mail code", "enabled": True})
    sms, _ = Authenticator.objects.update_or_create(name="sms-code", defaults={
        "auth_type": "sms-code", "title": "SMS code", "enabled": True})

    def send_one(index):
        authenticator, data = (email, {"email": "carol@example.com"}) if index % 2 else (sms, {"phone_number": PHONE})
        try:
            return authenticator.get_auth(None, binding=f"interaction-{index}").send_code(data).code_id
        except AuthError as error:
            return error.code

    results = run_together(10, send_one)
    assert sorted(result == "too_many_requests" for result in results) == [False] + [True] * 9, results
    assert len(mail.outbox) + len(sms_outbox) == 1
    assert OneTimeCode.objects.filter(account=account).count() == 1


def test_another_address_can_be_chosen_and_the_login_hint_fills_the_address(flow, confidential_app, user):
    url = start(flow, confidential_app, login_hint="alice@example.com")
    address_step = flow.client.get(f"{url}?authenticator=email-code").content.decode()
    assert 'value="alice@example.com"' in input_tag(address_step, "email")
    send(flow.client, url, email="Alice@Example.com")
    again = flow.client.get(f"{url}?authenticator=email-code&step=address").content.decode()
    assert 'value="Alice@Example.com"' in input_tag(again, "email") and 'name="code"' not in again
    # Only one method on the page: no "Use another method" link, the address link stays.
    password = Authenticator.objects.get(name="password")
    password.enabled = False
    password.save()  # as the admin does (a save tells every process's memory)
    code_step = flow.client.get(f"{url}?authenticator=email-code").content.decode()
    assert "Use another method" not in code_step and "Use another e-mail address" in code_step
