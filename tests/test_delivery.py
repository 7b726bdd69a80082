"""Delivering messages (identity.delivery): e-mail through Django's backends, SMS through the
console, file, in-memory and HTTP provider backends; translated templates; nothing said in logs."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.core import mail
from django.test import RequestFactory

from identity import delivery
from identity.delivery import DeliveryError, send_email, send_sms

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = {"code": "493817", "minutes": 10, "brand_name": "Acme", "host": "id.example.com"}


# -- e-mail ------------------------------------------------------------------------------------------------
def test_an_email_is_rendered_from_its_subject_and_message_templates(settings):
    settings.DEFAULT_FROM_EMAIL = "Acme <no-reply@acme.test>"
    send_email("bob@example.com", "sign_in_code", CONTEXT)
    [message] = mail.outbox
    assert message.to == ["bob@example.com"] and message.from_email == "Acme <no-reply@acme.test>"
    assert message.subject == "Your sign-in code for Acme"
    assert message.body.startswith("Your sign-in code is 493817.\n\nIt expires in 10 minutes.")
    assert "&" not in send_and_read("A & B")  # plain text: nothing HTML-escaped


def send_and_read(brand):
    mail.outbox.clear()
    send_email("bob@example.com", "sign_in_code", {**CONTEXT, "brand_name": brand})
    return mail.outbox[0].subject.replace("A & B", "")


@pytest.mark.parametrize(("language", "subject", "body"), [
    ("ru", "Ваш код для входа в Acme", "Ваш код для входа: 493817."),
    ("uk", "Ваш код для входу в Acme", "Ваш код для входу: 493817."),
])
def test_messages_are_translated(language, subject, body):
    send_email("bob@example.com", "sign_in_code", CONTEXT, language=language)
    assert mail.outbox[0].subject == subject
    assert mail.outbox[0].body.startswith(body)


@pytest.mark.parametrize("language", ["ru", "uk"])
@pytest.mark.parametrize("template", ["sign_in_code", "unknown_account", "new_sign_in", "password_changed"])
def test_every_message_template_is_translated(template, language):
    context = {**CONTEXT, "name": "Bob", "ip": "192.0.2.1", "browser": "Firefox"}
    for part in ("subject", "message"):
        english = {line for line in delivery.render(template, part, context, "en").splitlines() if line.strip()}
        translated = set(delivery.render(template, part, context, language).splitlines())
        assert english and not english & translated, (english & translated)


def test_the_sms_template_is_translated():
    assert delivery.render("sms_code", "message", CONTEXT, "ru").startswith("493817 — ваш код для входа в Acme.")
    assert delivery.render("sms_code", "message", CONTEXT, "uk").startswith("493817 — ваш код для входу в Acme.")


def test_the_request_first_form_adds_the_site(rf_request):
    send_email(rf_request, "bob@example.com", "sign_in_code", CONTEXT)
    assert mail.outbox[0].to == ["bob@example.com"]


@pytest.fixture
def rf_request():
    return RequestFactory().get("/")


def test_a_failing_mail_server_is_a_delivery_error_without_the_message(settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError) as failure:
        send_email("bob@example.com", "sign_in_code", CONTEXT)
    assert "493817" not in str(failure.value) and "493817" not in caplog.text
    assert "b***@example.com" in caplog.text


def test_a_mail_server_that_never_answers_is_a_delivery_error_after_the_timeout(settings, silent_mail_server):
    import time

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", silent_mail_server, 1
    started = time.monotonic()
    with pytest.raises(DeliveryError):
        send_email("bob@example.com", "sign_in_code", CONTEXT)
    assert time.monotonic() - started < 10  # the timeout, not the connection's life


# -- SMS backends -----------------------------------------------------------------------------------------
def test_the_in_memory_backend_keeps_messages_in_the_outbox(sms_outbox, settings):
    settings.PORTCULLIS_SMS_FROM = "Acme"
    send_sms("+14155552671", "sms_code", CONTEXT)
    assert sms_outbox == [delivery.SmsMessage(
        to="+14155552671", sender="Acme",
        body="493817 is your Acme sign-in code. It expires in 10 minutes.\n\n@id.example.com #493817")]


def test_the_console_backend_prints_the_message(settings, capsys):
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.ConsoleSmsBackend"
    send_sms("+14155552671", "sms_code", CONTEXT)
    printed = capsys.readouterr().out
    assert printed.startswith("SMS to +14155552671\n493817 is your Acme sign-in code.")


def test_the_file_backend_writes_one_file_per_message(settings, tmp_path):
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.FileSmsBackend"
    settings.PORTCULLIS_SMS_FILE_PATH = str(tmp_path / "sms")
    send_sms("+14155552671", "sms_code", CONTEXT)
    send_sms("+14155550100", "sms_code", CONTEXT)
    files = sorted((tmp_path / "sms").iterdir())
    assert len(files) == 2
    texts = sorted(path.read_text() for path in files)
    assert texts[0].startswith("To: +14155550100\nFrom: \n\n493817 is your Acme sign-in code.")


def test_the_file_backend_reports_an_unwritable_directory(settings, tmp_path):
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.FileSmsBackend"
    (tmp_path / "file").write_text("")
    settings.PORTCULLIS_SMS_FILE_PATH = str(tmp_path / "file" / "sms")
    with pytest.raises(DeliveryError):
        send_sms("+14155552671", "sms_code", CONTEXT)


# -- the HTTP provider adapter, against a fake provider on 127.0.0.1 ------------------------------------------
class FakeProvider:
    """A provider's messages endpoint: records each request, answers ``status`` (with an error body
    that echoes the message, as some providers do)."""

    def __init__(self) -> None:
        provider = self
        self.requests: list[dict] = []
        self.status = 201

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                provider.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = json.dumps({"sid": "SM1"} if provider.status < 300 else {"error": f"refused: {body}"})
                self.send_response(provider.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/messages"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider(settings, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fake = FakeProvider()
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.HttpSmsBackend"
    settings.PORTCULLIS_SMS_HTTP_URL = fake.url
    settings.PORTCULLIS_SMS_HTTP_TOKEN = "provider-token"
    settings.PORTCULLIS_SMS_FROM = "+15005550006"
    yield fake
    fake.close()


def test_the_http_backend_posts_json_with_a_bearer_token(provider):
    send_sms("+14155552671", "sms_code", CONTEXT)
    [request] = provider.requests
    assert request["path"] == "/v1/messages"
    assert request["headers"]["Authorization"] == "Bearer provider-token"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"to": "+14155552671", "from": "+15005550006",
                                           "body": delivery.render("sms_code", "message", CONTEXT)}


def test_the_http_backend_speaks_twilio_form_posts_with_basic_auth(provider, settings):
    settings.PORTCULLIS_SMS_HTTP_FORMAT = "form"
    settings.PORTCULLIS_SMS_HTTP_USERNAME = "AC123"
    send_sms("+14155552671", "sms_code", CONTEXT)
    [request] = provider.requests
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"AC123:provider-token").decode()
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request["body"])
    assert form["To"] == ["+14155552671"] and form["From"] == ["+15005550006"] and "493817" in form["Body"][0]


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_a_provider_error_is_a_delivery_error_that_never_holds_the_code(provider, status, caplog):
    provider.status = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError) as failure:
        send_sms("+14155552671", "sms_code", CONTEXT)
    assert str(failure.value) == f"the SMS provider answered {status}"
    assert "493817" not in caplog.text and "provider-token" not in caplog.text


def test_an_unreachable_provider_is_a_delivery_error(settings):
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.HttpSmsBackend"
    settings.PORTCULLIS_SMS_HTTP_URL = "http://127.0.0.1:9/v1/messages"
    with pytest.raises(DeliveryError, match="could not be reached"):
        send_sms("+14155552671", "sms_code", CONTEXT)


def test_an_unset_provider_url_is_a_delivery_error(settings):
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.HttpSmsBackend"
    settings.PORTCULLIS_SMS_HTTP_URL = ""
    with pytest.raises(DeliveryError, match="not set"):
        send_sms("+14155552671", "sms_code", CONTEXT)


def test_addresses_are_masked_in_logs():
    assert delivery.mask("alice@example.com") == "a***@example.com"
    assert delivery.mask("+14155552671") == "+1415***71"


# -- the standalone server's environment -------------------------------------------------------------------
def test_the_standalone_server_reads_the_sms_settings_from_the_environment(tmp_path):
    env = {**os.environ, "SMS_BACKEND": "identity.delivery.FileSmsBackend", "SMS_FILE_PATH": str(tmp_path),
           "SMS_HTTP_URL": "https://sms.example/v1", "SMS_FROM": "Acme", "DJANGO_SETTINGS_MODULE": "config.settings",
           "DEBUG": "1", "PORTCULLIS_VAR_DIR": str(tmp_path / "var")}
    script = ("import django; django.setup(); from django.conf import settings as s; "
              "print(s.PORTCULLIS_SMS_BACKEND, s.PORTCULLIS_SMS_FILE_PATH, s.PORTCULLIS_SMS_HTTP_URL, s.PORTCULLIS_SMS_FROM)")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["identity.delivery.FileSmsBackend", str(tmp_path), "https://sms.example/v1", "Acme"]
