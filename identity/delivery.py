"""Delivering messages to people: e-mail through Django's e-mail backends, SMS through a small
backend interface (``PORTCULLIS_SMS_BACKEND``).

Every message is a pair of templates rendered in the active language (or ``language``):
``<template>_subject.txt`` and ``<template>_message.txt`` for e-mail, ``<template>_message.txt`` for
an SMS. A bare name (``"sign_in_code"``) means ``portcullis/messages/<name>``. An e-mail whose
``<template>_message.html`` exists also carries that HTML part (the same text, with the
application's logo: ``brand_logo_url``, an absolute URL from :func:`absolute_url`); the plain text
stays the message's first part, for clients that show no HTML.

One-time codes travel in these messages, so nothing here logs a message's text: the log says
which template went to which (masked) address, never what it said. A backend that fails raises
:class:`DeliveryError`, whose text names the failure without the message either.

SMS backends (a dotted path in ``PORTCULLIS_SMS_BACKEND``):

- ``identity.delivery.ConsoleSmsBackend``: prints each message to standard output (development);
- ``identity.delivery.FileSmsBackend``: one file per message in ``PORTCULLIS_SMS_FILE_PATH``;
- ``identity.delivery.LocmemSmsBackend``: appends to :data:`outbox` (tests, like
  ``django.core.mail.outbox``);
- ``identity.delivery.HttpSmsBackend``: POSTs to a provider's HTTP API
  (``PORTCULLIS_SMS_HTTP_URL``, with a token), Twilio-like or plain JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.module_loading import import_string

from identity.app_settings import app_settings, setting

logger = logging.getLogger("portcullis.delivery")

DEFAULT_SMS_BACKEND = "identity.delivery.ConsoleSmsBackend"


class DeliveryError(Exception):
    """A message could not be handed over (the provider refused it, the mail server is down). Its
    text never holds the message."""


@dataclass(frozen=True)
class SmsMessage:
    to: str
    body: str
    sender: str = ""


# What LocmemSmsBackend sent, oldest first (tests read and clear it).
outbox: list[SmsMessage] = []


# -- rendering -------------------------------------------------------------------------------------
def template_path(template: str) -> str:
    return template if "/" in template else f"portcullis/messages/{template}"


def render(template: str, suffix: str, context: Mapping[str, Any], language: str | None = None) -> str:
    """``<template>_<suffix>.txt`` rendered in ``language`` (the active one when None)."""
    with translation.override(language or translation.get_language()):
        return render_to_string(f"{template_path(template)}_{suffix}.txt", dict(context)).strip()


def render_html(template: str, context: Mapping[str, Any], language: str | None = None) -> str | None:
    """``<template>_message.html`` rendered (autoescaped) in ``language``, or None when there is none."""
    try:
        html = get_template(f"{template_path(template)}_message.html")
    except TemplateDoesNotExist:
        return None
    with translation.override(language or translation.get_language()):
        return html.render(dict(context)).strip()


def absolute_url(url: str, request: HttpRequest | None = None) -> str:
    """``url`` (a path on this site, such as an uploaded logo's) as an absolute URL a mail client
    can load: on the issuer's origin (``PORTCULLIS_ISSUER``), else the request's; "" when neither
    is known or ``url`` is empty."""
    if url == "" or url.startswith(("https://", "http://")):
        return url
    base = app_settings.issuer(request)
    parts = urllib.parse.urlsplit(base)
    if not parts.scheme or not parts.netloc or not url.startswith("/") or url.startswith("//"):
        return ""
    return f"{parts.scheme}://{parts.netloc}{url}"


def mask(address: str) -> str:
    """An address as the log shows it: ``a***@example.com``, ``+1555***67``."""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return f"{address[:5]}***{address[-2:]}" if len(address) > 7 else "***"


# -- e-mail ----------------------------------------------------------------------------------------------
@overload
def send_email(to: str | Sequence[str], template: str, context: Mapping[str, Any], /, *,
               language: str | None = None, request: HttpRequest | None = None) -> None: ...


@overload
def send_email(request: HttpRequest | None, to: str | Sequence[str], template: str, context: Mapping[str, Any], /,
               *, language: str | None = None) -> None: ...


def send_email(*args: Any, language: str | None = None, request: HttpRequest | None = None) -> None:
    """Render ``template``'s subject and message and send them to ``to`` through Django's e-mail
    backend. Raises :class:`DeliveryError` when the backend fails.

    ``send_email(to, template, context)``, or with the request first (``send_email(request, to,
    template, context)``): the request adds ``site`` (its scheme and host) to the context."""
    if len(args) == 4:
        request, to, template, context = args
    else:
        to, template, context = args
    recipients = [to] if isinstance(to, str) else list(to)
    context = {"site": request.build_absolute_uri("/").rstrip("/") if request is not None else "", **context}
    subject = " ".join(render(template, "subject", context, language).split())  # one line
    body = render(template, "message", context, language)
    html = render_html(template, context, language)
    message = EmailMultiAlternatives(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    if html is not None:
        message.attach_alternative(html, "text/html")
    try:
        message.send()
    except OSError as error:  # smtplib.SMTPException is an OSError
        logger.warning("e-mail %s to %s failed: %s", template, ", ".join(map(mask, recipients)), type(error).__name__)
        raise DeliveryError(f"the e-mail could not be sent ({type(error).__name__})") from None
    logger.info("e-mail %s sent to %s", template, ", ".join(map(mask, recipients)))


# -- SMS ----------------------------------------------------------------------------------------------------
class SmsBackend:
    """What an SMS backend implements: ``send(message)``, raising :class:`DeliveryError`."""

    def send(self, message: SmsMessage) -> None:
        raise NotImplementedError


def sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(setting("SMS_BACKEND", DEFAULT_SMS_BACKEND) or DEFAULT_SMS_BACKEND)()
    return backend


def send_sms(to: str, template: str, context: Mapping[str, Any], *, language: str | None = None) -> None:
    """Render ``<template>_message.txt`` and send it to the E.164 number ``to``. Raises
    :class:`DeliveryError` when the backend fails."""
    message = SmsMessage(to=to, body=render(template, "message", context, language),
                         sender=str(setting("SMS_FROM", "") or ""))
    sms_backend().send(message)
    logger.info("SMS %s sent to %s", template, mask(to))


class ConsoleSmsBackend(SmsBackend):
    """Prints each message to standard output: for development only (the message holds the code)."""

    stream: Any = None

    def send(self, message: SmsMessage) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"SMS to {message.to}" + (f" from {message.sender}" if message.sender else "")
                     + f"\n{message.body}\n{'-' * 40}\n")
        stream.flush()


class FileSmsBackend(SmsBackend):
    """Writes each message to its own file in ``PORTCULLIS_SMS_FILE_PATH`` (a directory, made when
    missing), named by time: for development and staging."""

    def send(self, message: SmsMessage) -> None:
        directory = Path(setting("SMS_FILE_PATH", "") or Path(settings.BASE_DIR) / "var" / "sms")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            name = f"{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(4)}.sms"
            (directory / name).write_text(f"To: {message.to}\nFrom: {message.sender}\n\n{message.body}\n")
        except OSError as error:
            raise DeliveryError(f"the SMS could not be written ({type(error).__name__})") from None


class LocmemSmsBackend(SmsBackend):
    """Keeps each message in :data:`identity.delivery.outbox`: for tests."""

    def send(self, message: SmsMessage) -> None:
        outbox.append(message)


class HttpSmsBackend(SmsBackend):
    """A provider's HTTP API: one POST per message to ``PORTCULLIS_SMS_HTTP_URL``.

    - ``PORTCULLIS_SMS_HTTP_FORMAT`` ``"json"`` (default): a JSON body ``{"to", "from", "body"}``;
      ``"form"``: a form body ``To``, ``From``, ``Body`` (Twilio's Messages API).
    - ``PORTCULLIS_SMS_HTTP_TOKEN``: sent as ``Authorization: Bearer <token>``, or, when
      ``PORTCULLIS_SMS_HTTP_USERNAME`` is set (Twilio's account SID), as HTTP Basic's password.
    - ``PORTCULLIS_SMS_HTTP_TIMEOUT``: seconds (default 10).

    Any answer but 2xx, a timeout or a network failure is a :class:`DeliveryError` that names the
    status only (a provider's error body may echo the message).
    """

    def send(self, message: SmsMessage) -> None:
        url = str(setting("SMS_HTTP_URL", "") or "")
        if not url.startswith(("https://", "http://")):
            raise DeliveryError("PORTCULLIS_SMS_HTTP_URL is not set")
        request = urllib.request.Request(url, data=self.body(message), method="POST", headers=self.headers())
        try:
            with urllib.request.urlopen(request, timeout=float(setting("SMS_HTTP_TIMEOUT", 10))) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (OSError, ValueError) as error:  # URLError, timeouts, refused connections
            logger.warning("SMS provider unreachable: %s", type(error).__name__)
            raise DeliveryError(f"the SMS provider could not be reached ({type(error).__name__})") from None
        if not 200 <= status < 300:
            logger.warning("SMS provider answered %s", status)
            raise DeliveryError(f"the SMS provider answered {status}")

    @staticmethod
    def body(message: SmsMessage) -> bytes:
        if setting("SMS_HTTP_FORMAT", "json") == "form":
            return urllib.parse.urlencode({"To": message.to, "From": message.sender, "Body": message.body}).encode()
        return json.dumps({"to": message.to, "from": message.sender, "body": message.body}).encode()

    @staticmethod
    def headers() -> dict[str, str]:
        form = setting("SMS_HTTP_FORMAT", "json") == "form"
        headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
                   "Accept": "application/json", "User-Agent": "Portcullis"}
        token, username = str(setting("SMS_HTTP_TOKEN", "") or ""), str(setting("SMS_HTTP_USERNAME", "") or "")
        if username:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        return headers
