"""What the OpenID provider stores beside django-oauth-toolkit's own models."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class ApplicationSettings(models.Model):
    """Portcullis's settings for one DOT application. A missing row means the defaults."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="portcullis_settings",
        verbose_name=_("application"),
    )
    first_party = models.BooleanField(
        _("first-party"), default=False, help_text=_("First-party applications skip the consent page.")
    )
    headless_api = models.BooleanField(
        _("headless API allowed"),
        default=False,
        help_text=_("May call the headless Identity API (first-party applications only)."),
    )

    class Meta:
        verbose_name = _("application settings")
        verbose_name_plural = _("application settings")

    def __str__(self) -> str:
        return f"{self.application}"

    @classmethod
    def for_application(cls, application: models.Model) -> ApplicationSettings:
        """The saved row, or an unsaved one holding the defaults (no query when select_related)."""
        try:
            return application.portcullis_settings  # type: ignore[attr-defined]
        except cls.DoesNotExist:
            return cls(application=application)


class SigningKey(models.Model):
    """An RSA key that signs ID tokens. One is active; retired ones stay published for a while."""

    kid = models.CharField(_("key id"), max_length=100, unique=True)
    private_pem = models.TextField(_("private key (PEM)"))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)

    class Meta:
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=models.Q(active=True), name="identity_one_active_signing_key"
            )
        ]

    def __str__(self) -> str:
        return self.kid


class AuthorizationRecord(models.Model):
    """The sign-in behind one authorization code, and the token family the code starts.

    It survives the code: a second redemption finds it and revokes the family, and refreshes read
    the original ``auth_time`` / ``amr`` / ``acr`` from it.
    """

    grant = models.OneToOneField(
        oauth2_settings.GRANT_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="portcullis_record",
    )
    family = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    application = models.ForeignKey(oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    acr = models.CharField(max_length=100, blank=True)
    sid = models.CharField(max_length=64, blank=True, db_index=True)
    # The authenticator (its name) the user signed in with, when the sign-in said so: the auth
    # API's ``check`` answers it. A plain name: identity knows nothing of authenticators.
    authenticator = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    redeemed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("authorization")
        verbose_name_plural = _("authorizations")

    def __str__(self) -> str:
        return f"{self.user_id} → {self.application_id} at {self.auth_time:%Y-%m-%d %H:%M}"


class Consent(models.Model):
    """A user's remembered grant of scopes to a third-party application."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portcullis_consents")
    application = models.ForeignKey(oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+")
    scopes = models.TextField(_("scopes"))
    created_at = models.DateTimeField(_("granted"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [models.UniqueConstraint(fields=["user", "application"], name="identity_one_consent_per_app")]

    def __str__(self) -> str:
        return f"{self.user} → {self.application}"

    def covers(self, scopes: list[str]) -> bool:
        return set(scopes) <= set(self.scopes.split())


def new_subject() -> str:
    """A fresh subject identifier (``sub``): 128 random bits as 32 lowercase hexadecimal characters.

    Hexadecimal so that a relying party that stores it in a case-insensitive column or lower-cases it
    still tells two users apart."""
    return secrets.token_hex(16)


class Profile(models.Model):
    """Identity facts Django's user model lacks: the subject identifier, verified flags, the phone number.

    Every user has one: a data migration made them for existing users, our account-creating paths
    make them, and :func:`identity.subjects.ensure_profile` makes a missing one on first use.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="portcullis_profile"
    )
    subject = models.CharField(
        _("subject identifier"), max_length=64, unique=True, default=new_subject, editable=False,
        help_text=_("The user's “sub” in ID tokens, userinfo and introspection: random, stable, never reused."),
    )
    email_verified = models.BooleanField(_("e-mail verified"), default=False)
    phone_number = models.CharField(_("phone number (E.164)"), max_length=20, null=True, blank=True, unique=True)
    phone_number_verified = models.BooleanField(_("phone number verified"), default=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")

    def __str__(self) -> str:
        return str(self.user)


class SignInIdentifier(models.Model):
    """Every sign-in identifier (e-mail, username, phone number) of every user, by comparison key.

    The keys of all kinds are one namespace: the unique constraint makes two accounts unable to hold
    the same identifier, case-insensitively, even when two sign-ups race (on PostgreSQL and SQLite
    alike). Rows are kept in sync by receivers of the user's and the profile's saves
    (``identity.identifiers``). ``duplicate`` marks rows of a key that several accounts held before
    uniqueness was enforced: sign-in by such a key refuses to guess.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portcullis_identifiers")
    key = models.CharField(_("comparison key"), max_length=1000)
    kinds = models.CharField(_("kinds"), max_length=40, help_text=_("email, username or phone, comma-separated"))
    duplicate = models.BooleanField(
        _("held by several accounts"), default=False,
        help_text=_("Legacy data: sign-in by this identifier is refused until only one account holds it."),
    )

    class Meta:
        verbose_name = _("sign-in identifier")
        verbose_name_plural = _("sign-in identifiers")
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=models.Q(duplicate=False),
                                    name="identity_identifier_one_account"),
            models.UniqueConstraint(fields=["key", "user"], name="identity_identifier_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.kinds})"


class ConsentRequest(models.Model):
    """A consent page shown and not answered yet. It belongs to the sign-in that saw it, and one
    answer consumes it: a conditional UPDATE, so of parallel answers exactly one counts."""

    TTL = timedelta(minutes=15)

    key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sid = models.CharField(max_length=64)
    client_id = models.CharField(max_length=255)
    params = models.TextField()
    scopes = models.JSONField(default=list)
    login = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("consent request")
        verbose_name_plural = _("consent requests")

    def __str__(self) -> str:
        return f"{self.user_id} → {self.client_id}"

    @classmethod
    def consume(cls, key: str, user_id: str, sid: str) -> ConsentRequest | None:
        """The pending request ``key`` of this user's sign-in ``sid``, once; None when unknown,
        expired, someone else's, or already answered (by this request's rivals too)."""
        if not isinstance(key, str) or not key or len(key) > 64 or not key.isascii() or not key.isprintable():
            return None  # never a key we made (and a NUL cannot even be queried on PostgreSQL)
        now = timezone.now()
        won = cls.objects.filter(key=key, user_id=user_id, sid=sid, consumed_at__isnull=True,
                                 created_at__gt=now - cls.TTL).update(consumed_at=now)
        return cls.objects.filter(key=key).first() if won else None


class UserSession(models.Model):
    """A browser session a user signed in with (``identity.sessions``): what the admin lists and what
    "sign out everywhere" ends.

    ``session_key`` is the key itself, not a hash: ending the session means deleting it from the
    configured ``SESSION_ENGINE`` store, which is addressed by the key. The db and cached_db engines
    keep the same key as the primary key of ``django_session``, so this table is as sensitive as that
    one and no more; it is never shown (the admin shows a short fingerprint of its SHA-256).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portcullis_sessions",
                             verbose_name=_("user"))
    session_key = models.CharField(_("session key"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("signed in"), default=timezone.now)
    last_seen_at = models.DateTimeField(
        _("last activity"), default=timezone.now,
        help_text=_("The last request that changed the session (updated at most every five minutes)."))
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("browser session")
        verbose_name_plural = _("browser sessions")
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.user} · {self.fingerprint}"

    @property
    def fingerprint(self) -> str:
        """Eight hex digits of the key's SHA-256: tells sessions apart without revealing the key."""
        return hashlib.sha256(self.session_key.encode()).hexdigest()[:8]
