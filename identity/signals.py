"""Key and allowed-origin changes reach every process; token revocation follows account changes;
the sign-in identifier index follows the accounts' identifiers; a sign-in's ``last_login`` is
written by one compiled ``UPDATE``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone
from oauth2_provider.models import get_application_model

from identity import cors, discovery, identifiers, languages, later
from identity.app_settings import _mount_path
from identity.keys import keys_changed
from identity.models import Profile, SigningKey, SignInIdentifier
from identity.tokens import revoke_user_tokens


@receiver(setting_changed)
def urls_or_issuer_changed(setting: str, **kwargs: Any) -> None:
    """Tests (and reloads) that change the URLconf or the issuer get fresh discovery documents."""
    if setting in ("ROOT_URLCONF", "PORTCULLIS_ISSUER"):
        _mount_path.cache_clear()
        discovery.document.cache_clear()


@receiver(setting_changed)
def languages_changed(setting: str, **kwargs: Any) -> None:
    """The languages kept per cookie and Accept-Language follow the settings they come from (as
    Django's own caches of the steps do)."""
    if setting in ("LANGUAGES", "LANGUAGE_CODE", "LANGUAGE_COOKIE_NAME", "LOCALE_PATHS"):
        languages.negotiated.cache_clear()


@receiver([post_save, post_delete], sender=SigningKey)
def signing_keys_changed(**kwargs: Any) -> None:
    keys_changed()


@receiver([post_save, post_delete], sender=get_application_model())
def application_changed(**kwargs: Any) -> None:
    """Allowed origins may have changed: now for this process, and again once committed, so that
    no process keeps what it read before the commit."""
    cors.origins_changed()
    transaction.on_commit(cors.origins_changed)


@receiver(pre_save, sender=get_user_model())
def revoke_on_password_change_or_disable(
    sender: Any, instance: Any, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    """A new password or a disabled account ends every token the user holds (sessions end by
    themselves: Django's session hash follows the password, and inactive users are not loaded)."""
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return
    previous = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if previous is None:
        return
    if previous["password"] != instance.password or (previous["is_active"] and not instance.is_active):
        revoke_user_tokens(instance)


# Every sign-in identifier in one unique index (identity/identifiers.py): a taken identifier is
# refused before the row is written, and the index's unique constraint decides a race.
pre_save.connect(identifiers.before_user_save, sender=get_user_model(), dispatch_uid="portcullis_identifiers_user")
post_save.connect(identifiers.after_save, sender=get_user_model(), dispatch_uid="portcullis_identifiers_user")
pre_save.connect(identifiers.before_profile_save, sender=Profile, dispatch_uid="portcullis_identifiers_profile")
post_save.connect(identifiers.after_save, sender=Profile, dispatch_uid="portcullis_identifiers_profile")
post_delete.connect(identifiers.after_profile_delete, sender=Profile, dispatch_uid="portcullis_identifiers_profile")
post_delete.connect(identifiers.after_identifier_delete, sender=SignInIdentifier,
                    dispatch_uid="portcullis_identifiers_settle")


def record_last_login(sender: Any, user: Any, **kwargs: Any) -> None:
    """Django's ``update_last_login``, the same write and signals (``save(update_fields=["last_login"])``),
    its ``UPDATE`` compiled once (:func:`identity.prepared.save_fields`), and sent with a sign-in's
    other writes when it sends them together (:mod:`identity.later`)."""
    user.last_login = timezone.now()
    later.save_fields(user, ["last_login"])


def replace_update_last_login() -> None:
    """Put :func:`record_last_login` where ``django.contrib.auth`` connects ``update_last_login``,
    under the same ``dispatch_uid``: whichever app is ready first, one of them is connected (a
    connect under a taken ``dispatch_uid`` does nothing), and a project that disconnects
    ``update_last_login`` by that uid disconnects this one."""
    user_logged_in.disconnect(dispatch_uid="update_last_login")
    if isinstance(getattr(get_user_model(), "last_login", None), DeferredAttribute):
        user_logged_in.connect(record_last_login, dispatch_uid="update_last_login")
