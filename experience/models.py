"""The interaction (one sign-in attempt, server-side) and the audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Interaction(models.Model):
    """One pass through the sign-in experience. ``state`` is JSON: ids, timestamps, verifications."""

    SIGN_IN = "sign_in"  # SPEC §2's event names, as the Experience API speaks them
    SIGN_UP = "sign_up"
    FORGOT_PASSWORD = "forgot_password"
    EVENTS = [(SIGN_IN, _("Sign in")), (SIGN_UP, _("Sign up")), (FORGOT_PASSWORD, _("Forgot password"))]

    uid = models.CharField(max_length=64, primary_key=True)
    event = models.CharField(max_length=20, choices=EVENTS, default=SIGN_IN)
    state = models.JSONField(default=dict)
    client_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    identified_user: Any = None  # the account verified during this request (not stored: state has its id)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")

    def __str__(self) -> str:
        return f"{self.event} {self.uid[:8]}…"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at


class AuditEvent(models.Model):
    """A sign-in success or failure. Never holds a secret: no password, no code."""

    SIGN_IN_SUCCEEDED = "sign_in.succeeded"
    SIGN_IN_FAILED = "sign_in.failed"
    # part signup
    SIGN_UP = "sign_up.succeeded"
    SIGN_UP_FAILED = "sign_up.failed"
    PASSWORD_RESET = "password.reset"
    MFA_ADDED = "mfa.added"  # part mfa: a second factor set up, removed, used, failed
    MFA_REMOVED = "mfa.removed"
    MFA_USED = "mfa.used"
    MFA_FAILED = "mfa.failed"
    CODE_SENT = "code.sent"  # a one-time code was asked for (reason "no_account": nothing was sent)
    CODE_FAILED = "code.failed"  # a code that did not check out, or a send that was refused
    NEW_DEVICE = "sign_in.new_device"  # a sign-in from a browser the account had not used (notified)
    LOCKED_OUT = "sign_in.locked_out"  # an account locked after too many failures (experience.risk)

    kind = models.CharField(_("event"), max_length=50, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    identifier = models.CharField(_("identifier given"), max_length=254, blank=True)
    authenticator = models.CharField(_("authenticator"), max_length=64, blank=True)
    client_id = models.CharField(_("application"), max_length=100, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    reason = models.CharField(_("reason"), max_length=50, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.identifier}"


class KnownDevice(models.Model):
    """A browser an account has signed in from (``experience.notifications``): the SHA-256 of the
    random id in the browser's signed device cookie, never the id itself."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portcullis_devices")
    key = models.CharField(_("device key"), max_length=64)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("first sign-in"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last sign-in"), default=timezone.now)

    class Meta:
        verbose_name = _("known device")
        verbose_name_plural = _("known devices")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="experience_one_device_key_per_user")]

    def __str__(self) -> str:
        return f"{self.user} · {self.user_agent[:40]}"
