"""Authenticators configured by admins, and the identities users hold under them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import validate_slug
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.base import Auth
    from authenticators.registry import AuthType


class AuthenticatorQuerySet(models.QuerySet["Authenticator"]):
    def enabled(self) -> AuthenticatorQuerySet:
        return self.filter(enabled=True).order_by("sort_order", "pk")


class Authenticator(models.Model):
    """An admin-configured instance of a registered type (NocoBase's ``authenticators``)."""

    name = models.CharField(_("name"), max_length=64, unique=True, validators=[validate_slug],
                            help_text=_("Unique slug; clients name the authenticator with it (X-Authenticator)."))
    auth_type = models.CharField(_("type"), max_length=64)
    title = models.CharField(_("title"), max_length=100, help_text=_("Shown on the sign-in page."))
    description = models.TextField(_("description"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    sort_order = models.IntegerField(_("order"), default=0)
    options = models.JSONField(_("options"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = AuthenticatorQuerySet.as_manager()

    class Meta:
        verbose_name = _("authenticator")
        verbose_name_plural = _("authenticators")
        ordering = ["sort_order", "pk"]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    @property
    def display_title(self) -> str:
        """The title in the page's language: a title the catalogues know (the defaults, "Password",
        "E-mail code", ...) is translated; an admin's own title is shown as written."""
        return gettext(self.title) if self.title else ""

    @property
    def type(self) -> AuthType | None:
        from authenticators.registry import registry

        return registry.get(self.auth_type)

    def get_auth(self, request: HttpRequest | None = None, *, policy: Any = None, binding: str = "") -> Auth:
        """An instance of the type's class bound to this authenticator and request (and, from the
        engine, to the application's policy and the interaction one-time state belongs to)."""
        auth_type = self.type
        if auth_type is None:
            raise LookupError(f"Authenticator type {self.auth_type!r} is not registered.")
        return auth_type.auth_class(self, request, policy=policy, binding=binding)

    # NocoBase's helpers: the identity a user holds under this authenticator.
    def find_user(self, uuid: str) -> Any | None:
        link = self.user_links.select_related("user").filter(uuid=uuid).first()
        return link.user if link else None

    def new_user(self, uuid: str, user_values: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> Any:
        """A new account (unusable password) linked to ``uuid``. Its identifiers are checked like every
        account's: ``ValidationError`` keyed by field when one is taken (e.g. the e-mail)."""
        from django.contrib.auth import get_user_model

        from identity.identifiers import create_user

        user_model = get_user_model()
        values = dict(user_values or {})
        generated = user_model.USERNAME_FIELD not in values
        values.setdefault(user_model.USERNAME_FIELD, f"{self.name}-{uuid}"[:150])
        with transaction.atomic():
            # A generated username is ours, not a name someone chose to look like another.
            user = create_user(values, check_script=not generated)
            UserAuthenticator.objects.create(authenticator=self, user=user, uuid=uuid, meta=meta or {})
        return user

    def find_or_create_user(self, uuid: str, user_values: dict[str, Any] | None = None,
                            meta: dict[str, Any] | None = None) -> Any:
        return self.find_user(uuid) or self.new_user(uuid, user_values, meta)


class UserAuthenticator(models.Model):
    """A user's identity under one authenticator (NocoBase's ``usersAuthenticators``)."""

    authenticator = models.ForeignKey(Authenticator, on_delete=models.CASCADE, related_name="user_links")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="authenticator_links")
    uuid = models.CharField(_("identity under the authenticator"), max_length=255,
                            help_text=_("The user's id there: phone number, upstream sub, ..."))
    meta = models.JSONField(_("meta"), default=dict, blank=True)
    created_at = models.DateTimeField(_("linked"), default=timezone.now)

    class Meta:
        verbose_name = _("linked authenticator")
        verbose_name_plural = _("linked authenticators")
        constraints = [models.UniqueConstraint(fields=["authenticator", "uuid"], name="authenticators_unique_uuid")]

    def __str__(self) -> str:
        return f"{self.authenticator.name}:{self.uuid}"


class OneTimeCode(models.Model):
    """A code sent by a code-kind authenticator (``authenticators.base.CodeAuth``). The code itself
    is never stored: only its HMAC, bound to the handle (``code_id``) the client holds."""

    code_id = models.CharField(max_length=64, unique=True)
    authenticator = models.ForeignKey(Authenticator, on_delete=models.CASCADE, related_name="+")
    destination = models.CharField(_("sent to"), max_length=254)
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="+", verbose_name=_("account"),
                                help_text=_("The account the address signs in to (none for an unknown address)."))
    purpose = models.CharField(max_length=30, default="sign_in")
    binding = models.CharField(_("bound to"), max_length=64, blank=True,
                               help_text=_("The interaction (or other one-time state) the code belongs to."))
    digest = models.CharField(max_length=128)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("one-time code")
        verbose_name_plural = _("one-time codes")
        indexes = [models.Index(fields=["authenticator", "destination", "created_at"], name="authenticators_code_sends"),
                   models.Index(fields=["account", "created_at"], name="authenticators_code_account")]

    def __str__(self) -> str:
        return f"{self.authenticator_id} → {self.destination}"


# -- second factors (part mfa) ---------------------------------------------------------------------
class BackupCode(models.Model):
    """One of a user's backup codes (``authenticators.types.backup_code``): at least 64 random bits,
    shown once when made; only its HMAC is stored, and it is spent by a conditional UPDATE."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portcullis_backup_codes")
    digest = models.CharField(max_length=128)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        verbose_name = _("backup code")
        verbose_name_plural = _("backup codes")
        indexes = [models.Index(fields=["user", "digest"], name="authenticators_backup_lookup")]

    def __str__(self) -> str:
        state = _("used") if self.used_at else _("unused")  # not inside the f-string: makemessages finds both
        return f"{self.user} ({state})"


class SecondFactorState(models.Model):
    """A user's consecutive failures with one second-factor authenticator. The row is locked while a
    code is checked, so counting is exact under concurrency; at ``FACTOR_MAX_FAILURES`` (100) the
    factor is disabled for that user (``disabled_at``) until an administrator resets it here."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    authenticator = models.ForeignKey(Authenticator, on_delete=models.CASCADE, related_name="+")
    failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    disabled_at = models.DateTimeField(_("disabled"), null=True, blank=True,
                                       help_text=_("Set after too many consecutive failures; clear it to enable the factor again."))
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("second-factor state")
        verbose_name_plural = _("second-factor states")
        constraints = [models.UniqueConstraint(fields=["user", "authenticator"], name="authenticators_one_factor_state")]

    def __str__(self) -> str:
        return f"{self.user} · {self.authenticator_id}"
