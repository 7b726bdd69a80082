"""E-mails about the account (experience.notifications): a sign-in from a new device, a changed
password."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client, RequestFactory

from experience import notifications
from experience.models import AuditEvent, KnownDevice
from tests.helpers import Flow

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def sign_out(client):
    """A new session, the browser's other cookies kept (the test client's logout() drops them all)."""
    del client.cookies[settings.SESSION_COOKIE_NAME]


def sign_in(client, app, capture):
    with capture(execute=True):
        code, _ = Flow(client).code_for(app)
    return code


def test_the_first_device_is_remembered_quietly_and_a_new_one_is_announced(confidential_app, user,
                                                                            django_capture_on_commit_callbacks):
    laptop = Client(HTTP_USER_AGENT=FIREFOX)
    sign_in(laptop, confidential_app, django_capture_on_commit_callbacks)
    assert mail.outbox == []  # the account's first browser: nothing to warn about
    assert AuditEvent.objects.filter(kind="sign_in.new_device", user=user).count() == 1  # but audited
    cookie = laptop.cookies[notifications.COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) >= 365 * 24 * 3600
    assert KnownDevice.objects.filter(user=user).count() == 1
    assert cookie.value.split(":")[0] not in repr(list(KnownDevice.objects.values()))  # only its hash is kept

    sign_out(laptop)
    sign_in(laptop, confidential_app, django_capture_on_commit_callbacks)
    assert mail.outbox == []  # the same browser again

    phone = Client(HTTP_USER_AGENT=CHROME, REMOTE_ADDR="198.51.100.7")
    sign_in(phone, confidential_app, django_capture_on_commit_callbacks)
    [message] = mail.outbox
    assert message.to == ["Alice@example.com"] and message.subject == "New sign-in to your account"
    assert "Hello Alice Liddell," in message.body
    assert "IP address: 198.51.100.7" in message.body and f"Browser: {CHROME}" in message.body
    assert AuditEvent.objects.filter(kind="sign_in.new_device", user=user).count() == 2
    assert KnownDevice.objects.filter(user=user).count() == 2


def test_a_forged_or_foreign_device_cookie_counts_as_a_new_device(confidential_app, user, django_user_model,
                                                                  django_capture_on_commit_callbacks):
    sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)  # the known device
    forged = Client()
    forged.cookies[notifications.COOKIE] = "made-up:value"
    sign_in(forged, confidential_app, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    # Bob's browser is not Alice's device, even with a good cookie.
    django_user_model.objects.create_user("bob", "bob@example.com", "another fine password")
    shared = Client()
    with django_capture_on_commit_callbacks(execute=True):
        Flow(shared).code_for(confidential_app, identifier="bob", password="another fine password")
    sign_out(shared)
    sign_in(shared, confidential_app, django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["Alice@example.com"], ["Alice@example.com"]]


def test_the_notices_can_be_switched_off(confidential_app, user, settings, django_capture_on_commit_callbacks):
    settings.PORTCULLIS_NEW_SIGN_IN_EMAILS = False
    sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)
    sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)
    assert mail.outbox == [] and KnownDevice.objects.count() == 0


def test_the_notice_is_in_the_language_of_the_sign_in(confidential_app, user, django_capture_on_commit_callbacks):
    sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)
    sign_in(Client(HTTP_ACCEPT_LANGUAGE="uk"), confidential_app, django_capture_on_commit_callbacks)
    assert mail.outbox[0].subject == "Новий вхід у ваш обліковий запис"


def test_a_failed_notice_never_fails_the_sign_in(confidential_app, user, settings, django_capture_on_commit_callbacks):
    sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    assert sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)


def test_a_mail_server_that_never_answers_costs_the_sign_in_its_notice_only(
        confidential_app, user, settings, django_capture_on_commit_callbacks, caplog, silent_mail_server):
    sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", silent_mail_server, 1
    assert sign_in(Client(), confidential_app, django_capture_on_commit_callbacks)
    assert "notification new_sign_in for user" in caplog.text and "not delivered" in caplog.text


def test_password_changed_tells_the_user(user, django_capture_on_commit_callbacks):
    request = RequestFactory().post("/", HTTP_USER_AGENT=FIREFOX, REMOTE_ADDR="203.0.113.9")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.password_changed(request, user)
    [message] = mail.outbox
    assert message.subject == "Your password was changed" and message.to == ["Alice@example.com"]
    assert "IP address: 203.0.113.9" in message.body and f"Browser: {FIREFOX}" in message.body


def test_nothing_is_sent_before_the_transaction_commits(user):
    notifications.password_changed(RequestFactory().post("/"), user)
    assert mail.outbox == []  # the test's transaction never commits


def test_the_new_sign_in_notice_names_the_application_and_its_support_address(confidential_app, user,
                                                                             django_capture_on_commit_callbacks):
    from experience.models import ApplicationExperience

    ApplicationExperience.objects.create(application=confidential_app.application, overrides={
        "branding": {"display_name": "Acme Shop", "support_email": "help@acme.example"}})
    sign_in(Client(HTTP_USER_AGENT=FIREFOX), confidential_app, django_capture_on_commit_callbacks)
    sign_in(Client(HTTP_USER_AGENT=CHROME), confidential_app, django_capture_on_commit_callbacks)

    [message] = mail.outbox
    assert "Application: Acme Shop" in message.body and "Questions: help@acme.example" in message.body
