"""The interaction (one sign-in attempt, server-side) and the audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


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
    ACCESS_DENIED = "access.denied"  # an access rule refused (reason: its code; experience.access_control)
    # An administrator's actions on the user's page (reason "admin"; the admin's history names who)
    SIGNED_OUT_EVERYWHERE = "sign_out.everywhere"
    SESSION_ENDED = "sign_out.session"
    TOKEN_REVOKED = "token.revoked"
    CONSENT_REVOKED = "consent.revoked"

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


def _default_identifiers() -> list[str]:
    return ["email"]


def _default_factors() -> list[str]:
    return ["totp", "backup_code", "email_code"]


IMAGE_FIELDS = ("logo", "logo_dark", "favicon")


def image_url(file: Any) -> str:
    """An uploaded branding image's URL as the document writes it (empty: none)."""
    return file.url if file else ""


def image_name(url: str) -> str | None:
    """The stored name of the branding image a document's URL points at ("" for none; None when the
    URL is no uploaded branding image here, as ``experience.branding.stored_image`` tells: images
    are uploaded in admin, never fetched)."""
    from experience import branding

    if url == "":
        return ""
    prefix = settings.MEDIA_URL if settings.MEDIA_URL.startswith("/") else "/" + settings.MEDIA_URL
    directory = f"{prefix}{branding.UPLOAD_DIRECTORY}/"
    name = url[len(directory):] if url.startswith(directory) else ""
    return f"{branding.UPLOAD_DIRECTORY}/{name}" if branding.stored_image(name) is not None else None


def value_of(row: models.Model, field_name: str) -> Any:
    value = getattr(row, field_name)
    if field_name in IMAGE_FIELDS:
        return image_url(value)
    return list(value) if isinstance(value, list) else value


def set_value(row: models.Model, field_name: str, value: Any) -> None:
    if field_name in IMAGE_FIELDS:
        value = image_name(value) or ""
    setattr(row, field_name, value)


class Experience(models.Model):
    """The default sign-in experience: SPEC §5's ``experience`` policies, edited in admin.

    One row, ``key="default"`` (no row: the built-in defaults of ``experience.policy``). The rules its
    values follow live in ``experience.configuration`` (the admin and ``manage.py portcullis_config
    apply`` both check them there). Per-application overrides are partial documents, a later model
    of their own (see docs/config-document.md); branding, language and access rules are reserved keys.
    """

    DEFAULT = "default"
    MFA_POLICIES = [("off", _("Off")), ("optional", _("Optional")), ("required", _("Required"))]
    CAPTCHA_POLICIES = [("off", _("Off")), ("risk", _("On risk (repeated failures)")), ("always", _("Always"))]

    key = models.CharField(_("key"), max_length=30, unique=True, default=DEFAULT, editable=False)
    authenticators = models.JSONField(
        _("authenticators"), null=True, blank=True,
        help_text=_("Names of the authenticators shown, in display order (forms and buttons alike)."),
    )
    sign_up_enabled = models.BooleanField(_("sign-up enabled"), default=True,
                                          help_text=_("Off: nobody can create an account on the sign-in pages."))
    sign_up_identifiers = models.JSONField(
        _("sign-up identifiers"), default=_default_identifiers,
        help_text=_("What a new account is identified by: e-mail, phone, username."),
    )
    sign_up_verify = models.BooleanField(_("verify on sign-up"), default=True,
                                         help_text=_("The e-mail or phone is verified by code before the account exists."))
    password_min_length = models.PositiveSmallIntegerField(_("minimum password length"), default=8,
                                                           help_text=_("At least 8 (8 to 128). NIST recommends 15 when the password is the "
                                                                     "only factor."))
    password_blocklist = models.BooleanField(_("refuse common passwords"), default=True)
    password_similarity = models.BooleanField(_("refuse passwords similar to the identifier"), default=True)
    mfa_policy = models.CharField(_("two-factor policy"), max_length=20, choices=MFA_POLICIES, default="optional",
                                  help_text=_("Required: users without a second factor enrol during sign-in."))
    mfa_factors = models.JSONField(_("second factors"), default=_default_factors,
                                   help_text=_("The second factors users may use and enrol."))
    captcha_policy = models.CharField(_("captcha policy"), max_length=20, choices=CAPTCHA_POLICIES, default="risk",
                                      help_text=_("On risk: after repeated failures for an account or from an address."))
    # branding (SPEC §5 ``branding``; the rules are ``experience.branding``'s)
    display_name = models.CharField(_("display name"), max_length=100, blank=True,
                                    help_text=_("Shown as “Sign in to …”; empty: the application's name."))
    logo = models.FileField(_("logo"), upload_to="branding/", blank=True, max_length=200,
                            help_text=_("PNG, JPEG, GIF, WebP or SVG, at most 512 KiB. SVG with scripts, event "
                                        "handlers or external references is refused."))
    logo_dark = models.FileField(_("dark-mode logo"), upload_to="branding/", blank=True, max_length=200,
                                 help_text=_("Shown when the browser prefers a dark colour scheme; empty: the logo."))
    favicon = models.FileField(_("favicon"), upload_to="branding/", blank=True, max_length=200,
                               help_text=_("ICO, PNG or SVG, at most 512 KiB."))
    primary_color = models.CharField(_("primary colour"), max_length=7, blank=True,
                                     help_text=_("Buttons, links and focus rings, as #rrggbb; empty: Portcullis' blue."))
    primary_color_dark = models.CharField(_("primary colour (dark mode)"), max_length=7, blank=True,
                                          help_text=_("The same in dark mode; empty: the built-in one."))
    custom_css = models.TextField(
        _("custom CSS"), blank=True,
        help_text=_("Added to the pages' style sheet. It may not load anything (@import, url(), fonts) or contain "
                    "< or backslashes; the pages' variables are --primary, --bg, --fg, --card, --muted, --border."),
    )
    terms_url = models.CharField(_("terms of service link"), max_length=500, blank=True,
                                 help_text=_("An https:// URL or a path on this site, linked on the sign-up page."))
    privacy_url = models.CharField(_("privacy policy link"), max_length=500, blank=True,
                                   help_text=_("An https:// URL or a path on this site."))
    support_email = models.CharField(_("support e-mail"), max_length=254, blank=True,
                                     help_text=_("Shown on error pages and in e-mails."))
    language = models.CharField(
        _("default language"), max_length=10, blank=True,
        help_text=_("The pages' language when the browser asks for none we have and the user chose none; "
                    "empty: the site's LANGUAGE_CODE."),
    )
    # access rules (``experience.access``): lists of e-mail domains, CIDRs, ISO 3166-1 region codes
    email_domains_allow = models.JSONField(_("allowed e-mail domains"), default=list, blank=True,
                                           help_text=_("Only accounts with an e-mail in these domains may sign in "
                                                       "(*.example.com: its subdomains); empty: any."))
    email_domains_deny = models.JSONField(_("denied e-mail domains"), default=list, blank=True)
    ip_allow = models.JSONField(_("allowed IP ranges"), default=list, blank=True,
                                help_text=_("CIDRs (IPv4 and IPv6), e.g. 203.0.113.0/24; empty: any address."))
    ip_deny = models.JSONField(_("denied IP ranges"), default=list, blank=True)
    regions_allow = models.JSONField(_("allowed regions"), default=list, blank=True,
                                     help_text=_("ISO 3166-1 alpha-2 codes (DE, US) read from the REGION_HEADER "
                                                 "set by the proxy; empty: any region."))
    regions_deny = models.JSONField(_("denied regions"), default=list, blank=True)
    sign_in_url = models.CharField(
        _("custom sign-in page"), max_length=200, blank=True,
        help_text=_("A path on this site (e.g. /login/) of a sign-in UI over the Experience API; "
                    "empty: the hosted pages."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("default sign-in experience")
        verbose_name_plural = _("default sign-in experience")

    def __str__(self) -> str:
        return str(_("Default sign-in experience"))

    def policies(self) -> dict[str, Any]:
        """The row as SPEC §5's ``experience`` document (``authenticators`` None: every enabled one;
        an image as its URL, empty when none is uploaded)."""
        return {key: value_of(self, fields) if isinstance(fields, str)
                else {name: value_of(self, field_name) for name, field_name in fields.items()}
                for key, fields in self.FIELDS.items()}

    def set_policies(self, document: dict[str, Any]) -> None:
        """Set what a (valid, possibly partial) ``experience`` document names; leave the rest."""
        for key, fields in self.FIELDS.items():
            if isinstance(fields, str):
                if key in document:
                    set_value(self, fields, document[key])
            else:
                for name, field_name in fields.items():
                    if name in document.get(key, {}):
                        set_value(self, field_name, document[key][name])

    # document key (and sub-key) -> model field, in SPEC §5's order
    FIELDS: dict[str, str | dict[str, str]] = {
        "branding": {"display_name": "display_name", "logo_url": "logo", "logo_dark_url": "logo_dark",
                     "favicon_url": "favicon", "primary_color": "primary_color",
                     "primary_color_dark": "primary_color_dark", "custom_css": "custom_css",
                     "terms_url": "terms_url", "privacy_url": "privacy_url", "support_email": "support_email"},
        "language": "language",
        "authenticators": "authenticators",
        "sign_up": {"enabled": "sign_up_enabled", "identifiers": "sign_up_identifiers", "verify": "sign_up_verify"},
        "password_policy": {"min_length": "password_min_length", "blocklist": "password_blocklist",
                            "similarity": "password_similarity"},
        "mfa": {"policy": "mfa_policy", "factors": "mfa_factors"},
        "captcha": {"policy": "captcha_policy"},
        "access_rules": {name: name for name in ("email_domains_allow", "email_domains_deny", "ip_allow", "ip_deny",
                                                 "regions_allow", "regions_deny")},
        "sign_in_url": "sign_in_url",
    }

    def field_of(self, path: str) -> str | None:
        """The model field behind a document path such as ``mfa.factors`` (None: the whole row)."""
        key, _sep, name = path.partition(".")
        fields = self.FIELDS.get(key.split("[")[0])
        if isinstance(fields, str):
            return fields
        if fields is not None:
            return fields.get(name.split("[")[0].split(".")[0])
        return None

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from experience import configuration

        problems = configuration.Problems()
        document = self.policies()
        if document["authenticators"] is None:  # no list: every enabled first factor, in its order
            del document["authenticators"]
        for name in configuration.IMAGE_KEYS:  # uploads are checked by the admin's file field
            del document["branding"][name]
        configuration.validate_experience(document, "", problems,
                                          names=configuration.authenticator_names(), complete=True)
        if problems:
            errors: dict[str, list[str]] = {}
            for path, message in problems:
                errors.setdefault(self.field_of(path) or "__all__", []).append(
                    configuration.field_message(document, path, message))
            raise ValidationError(errors)


class ApplicationExperience(models.Model):
    """One application's overrides of the default experience: a *partial* ``experience`` document
    (SPEC §5: a missing key inherits; objects merge per key, a list replaces the inherited one),
    plus its uploaded images (an empty one inherits the default's). ``experience.policy.resolve``
    merges it over the default; ``experience.configuration`` checks it, for the admin and for
    ``manage.py portcullis_config`` alike."""

    application = models.OneToOneField(oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE,
                                       related_name="portcullis_experience", verbose_name=_("application"))
    overrides = models.JSONField(_("overrides"), default=dict, blank=True,
                                 help_text=_("The values this application changes, as a partial experience document."))
    logo = models.FileField(_("logo"), upload_to="branding/", blank=True, max_length=200,
                            help_text=_("Empty: the default experience's logo."))
    logo_dark = models.FileField(_("dark-mode logo"), upload_to="branding/", blank=True, max_length=200,
                                 help_text=_("Empty: the default experience's dark-mode logo."))
    favicon = models.FileField(_("favicon"), upload_to="branding/", blank=True, max_length=200,
                               help_text=_("Empty: the default experience's favicon."))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    # the images' document keys (in ``branding``) -> fields
    IMAGES = {"logo_url": "logo", "logo_dark_url": "logo_dark", "favicon_url": "favicon"}

    class Meta:
        verbose_name = _("application sign-in experience")
        verbose_name_plural = _("application sign-in experiences")

    def __str__(self) -> str:
        return str(_("Sign-in experience of %(application)s") % {"application": self.application})

    def document(self) -> dict[str, Any]:
        """The overrides as a partial ``experience`` document, its uploaded images as URLs."""
        document = {key: (dict(value) if isinstance(value, dict) else value) for key, value in self.overrides.items()}
        for key, field_name in self.IMAGES.items():
            file = getattr(self, field_name)
            if file:
                document.setdefault("branding", {})[key] = image_url(file)
        return document

    def set_document(self, document: dict[str, Any]) -> None:
        """Replace the overrides by a (valid) partial document; its image URLs set the images."""
        overrides = {key: (dict(value) if isinstance(value, dict) else value) for key, value in document.items()}
        branding = overrides.get("branding")
        for key, field_name in self.IMAGES.items():
            url = branding.pop(key, "") if isinstance(branding, dict) else ""
            setattr(self, field_name, image_name(url) or "")
        if isinstance(branding, dict) and not branding:
            del overrides["branding"]
        self.overrides = overrides

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from experience import configuration

        problems = configuration.Problems()
        configuration.validate_overrides(self.overrides, "overrides", problems)
        if problems:
            raise ValidationError({"overrides": [f"{path.removeprefix('overrides.')}: {message}"
                                                 for path, message in problems]})


def _experience_changed(**kwargs: Any) -> None:
    from experience import policy

    policy.experience_changed()


models.signals.post_save.connect(_experience_changed, sender=Experience, dispatch_uid="portcullis_experience_saved")
models.signals.post_delete.connect(_experience_changed, sender=Experience, dispatch_uid="portcullis_experience_deleted")
models.signals.post_save.connect(_experience_changed, sender=ApplicationExperience,
                                 dispatch_uid="portcullis_application_experience_saved")
models.signals.post_delete.connect(_experience_changed, sender=ApplicationExperience,
                                   dispatch_uid="portcullis_application_experience_deleted")
# The enabled authenticators are remembered with the experiences (experience.policy.enabled_authenticators).
models.signals.post_save.connect(_experience_changed, sender="authenticators.Authenticator",
                                 dispatch_uid="portcullis_authenticator_saved")
models.signals.post_delete.connect(_experience_changed, sender="authenticators.Authenticator",
                                   dispatch_uid="portcullis_authenticator_deleted")


# -- redirect-type authenticators (upstream sign-in, enterprise SSO) ------------------------------------
class UpstreamRedirect(models.Model):
    """A sign-in sent to an upstream provider, waiting for its callback (``experience.upstream``).

    Found by the SHA-256 of its ``state`` (the state itself is never stored), used once (a
    conditional UPDATE sets ``consumed_at``), and only until ``expires_at``. It belongs to the
    interaction that started it: a hosted page's (bound to that browser's session) or, for an API
    client (``GET /api/auth/<name>/authorize-url``), one made for the application, with the front
    end's ``redirect`` URI where the callback sends the browser with an exchange code."""

    digest = models.CharField(max_length=64, unique=True)
    authenticator = models.CharField(_("authenticator"), max_length=64)
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="+")
    client_id = models.CharField(_("application"), max_length=100, blank=True)
    redirect = models.CharField(_("front end's redirect URI"), max_length=2000, blank=True,
                                help_text=_("Empty for the hosted pages."))
    client_state = models.CharField(max_length=500, blank=True)  # the front end's own state, echoed back
    pending = models.JSONField(default=dict)  # nonce, PKCE verifier, redirect URI: never the state
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("upstream sign-in")
        verbose_name_plural = _("upstream sign-ins")

    def __str__(self) -> str:
        return f"{self.authenticator} {self.created_at:%Y-%m-%d %H:%M}"


class ExchangeCode(models.Model):
    """What the callback gives an API client's front end (``?code=``): single use, short-lived
    (60 s), bound to the application; traded at ``POST /api/auth/token`` for a UserToken. Only its
    SHA-256 is stored. The interaction holds the upstream verification the token is issued for."""

    digest = models.CharField(max_length=64, unique=True)
    client_id = models.CharField(_("application"), max_length=100)
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("exchange code")
        verbose_name_plural = _("exchange codes")

    def __str__(self) -> str:
        return f"{self.client_id} {self.created_at:%Y-%m-%d %H:%M}"
