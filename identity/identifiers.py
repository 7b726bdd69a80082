"""Sign-in identifiers: e-mail addresses, usernames and phone numbers as one case-insensitive namespace.

Every path that creates or changes an account (Django admin, :func:`create_user`, sign-up, upstream
sign-in) and every sign-in (:func:`find_user`) normalises an identifier the same way:

- the stored value: NFKC, without surrounding white space (a phone number also without spaces,
  dots, dashes and brackets, and then it must be E.164);
- the comparison key: the stored value case-folded and NFKC-normalised again (Unicode's
  NFKC_Casefold, near enough), whatever the kind. So ``Dave``, ``dave`` and ``ＤＡＶＥ`` are one
  identifier, ``ERIN@example.com`` and ``erin@example.com`` too, ``STRASSE`` and ``straße`` too, and
  an e-mail address may not equal another account's username.

The keys live in :class:`identity.models.SignInIdentifier`, whose unique constraint decides between
two sign-ups that race for one e-mail address. Receivers of the user's and the profile's saves keep
it in sync (a ``save(update_fields=["last_login"])`` costs no query). Bulk updates
(``QuerySet.update``, ``bulk_create``) skip the receivers: run ``manage.py portcullis_identifiers``
afterwards. Until then the index fails closed: :func:`find_user` checks the account it found against
the account's own fields.

Usernames that mix scripts (a Cyrillic ``а`` among Latin letters) are refused at creation: see
docs/security.md for the confusables policy and what it does not cover.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Model, Q
from django.utils.translation import gettext_lazy as _

from identity.models import Profile, SignInIdentifier
from identity.prepared import PreparedQuery

EMAIL, USERNAME, PHONE = "email", "username", "phone"
KINDS = (EMAIL, USERNAME, PHONE)
PHONE_FIELD = "phone_number"
MAX_IDENTIFIER = 320
E164 = re.compile(r"\+[1-9][0-9]{6,14}")

TAKEN = {
    EMAIL: _("This e-mail address is already used by another account."),
    USERNAME: _("This username is already used by another account."),
    PHONE: _("This phone number is already used by another account."),
}
MIXED_SCRIPT = _("Use the letters of one script only: a name that mixes scripts (Latin and Cyrillic, say) "
                 "can look like someone else's.")
BAD_PHONE = _("Enter the phone number in international format, e.g. +15551234567.")


class AmbiguousIdentifier(LookupError):
    """Several accounts hold the identifier (data from before uniqueness was enforced)."""


# -- normalisation ------------------------------------------------------------------------------------
def normalise(kind: str, value: str) -> str:
    """The form in which an identifier is stored: NFKC, stripped (phone: separators removed too)."""
    value = unicodedata.normalize("NFKC", value).strip()
    if kind == PHONE:
        value = re.sub(r"[\s().\-]", "", value)
    return value


def comparison_key(kind: str, value: str) -> str:
    """The key two identifiers share when they are the same to a person: case-folded, NFKC."""
    return unicodedata.normalize("NFKC", normalise(kind, value).casefold())


def user_fields(model: type[Model] | None = None) -> dict[str, str]:
    """The user model's field for each identifier kind it has."""
    model = model or get_user_model()
    fields = {USERNAME: model.USERNAME_FIELD}  # type: ignore[attr-defined]
    email = model.get_email_field_name()  # type: ignore[attr-defined]
    if email in {field.name for field in model._meta.concrete_fields}:
        fields[EMAIL] = email
    return fields


def field_name(kind: str) -> str:
    """The form field (and model field) that holds an identifier of ``kind``."""
    return PHONE_FIELD if kind == PHONE else user_fields().get(kind, kind)


def identifiers_of(user: Any) -> dict[str, str]:
    """The user's identifiers by kind, empty ones left out (the phone from the profile)."""
    values = {kind: getattr(user, field, "") or "" for kind, field in user_fields(type(user)).items()}
    try:
        phone = user.portcullis_profile.phone_number
    except ObjectDoesNotExist:
        phone = None
    values[PHONE] = phone or ""
    return {kind: value for kind, value in values.items() if value}


# -- confusables ------------------------------------------------------------------------------------
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA", "MODIFIER": "LATIN",
                   "ARABIC-INDIC": "ARABIC", "EXTENDED": "ARABIC"}
# UTS #39's "highly restrictive" level: one script, or one of these combinations.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def _script(char: str) -> str | None:
    """The script of a letter or digit (from its Unicode name); None for digits 0-9, punctuation..."""
    if char.isascii():
        return "LATIN" if char.isalpha() else None
    if not char.isalnum():
        return None
    word = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    return _SCRIPT_ALIASES.get(word, word)


def scripts_of(value: str) -> set[str]:
    return {script for script in map(_script, unicodedata.normalize("NFKC", value)) if script}


def validate_single_script(value: str) -> None:
    """Refuse a name whose letters come from several scripts (``аlice`` with a Cyrillic ``а``)."""
    scripts = scripts_of(value)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_MIXES):
        raise ValidationError(MIXED_SCRIPT, code="mixed_script")


# -- availability ----------------------------------------------------------------------------------
def _wanted(values: Mapping[str, str | None]) -> dict[str, set[str]]:
    """Comparison key → the kinds that ask for it."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for kind, value in values.items():
        if isinstance(value, str) and value.strip():
            wanted[comparison_key(kind, value)].add(kind)
    return dict(wanted)


def _lookup(keys: set[str], user_id: Any, using: str | None = None) -> tuple[list[SignInIdentifier], set[str]]:
    """In one query: the rows ``user_id`` holds, and which of ``keys`` other accounts hold.

    A key the user already holds is never "taken", even when a legacy duplicate shares it."""
    if not keys and user_id is None:
        return [], set()
    query = Q(key__in=keys)
    if user_id is not None:
        query |= Q(user_id=user_id)
    rows = list(SignInIdentifier.objects.db_manager(using).filter(query))
    own = [row for row in rows if user_id is not None and row.user_id == user_id]
    own_keys = {row.key for row in own}
    taken = {row.key for row in rows if row.key in keys and row.key not in own_keys}
    return own, taken


def _taken_error(taken: Iterable[str], wanted: Mapping[str, set[str]]) -> ValidationError:
    errors: dict[str, list[ValidationError]] = {}
    for key in taken:
        for kind in sorted(wanted.get(key, ())):
            errors.setdefault(field_name(kind), [ValidationError(TAKEN[kind], code="taken")])
    return ValidationError(errors or {field_name(USERNAME): [ValidationError(TAKEN[USERNAME], code="taken")]})


def _pk(user: Any) -> Any:
    return getattr(user, "pk", user)


def check_available(values: Mapping[str, str | None], exclude: Any = None) -> None:
    """Raise ``ValidationError`` keyed by field name when another account holds one of ``values``.

    ``values`` maps kinds (``"email"``, ``"username"``, ``"phone"``) to values (empty ones are
    ignored); ``exclude`` is the account being changed (a user or its pk), whose own identifiers do
    not count. Across kinds: an e-mail address equal to another account's username is taken."""
    wanted = _wanted(values)
    if not wanted:
        return
    _own, taken = _lookup(set(wanted), _pk(exclude))
    if taken:
        raise _taken_error(taken, wanted)


def clean_identifiers(values: Mapping[str, str | None], *, exclude: Any = None,
                      check_script: bool = True) -> dict[str, str]:
    """Normalise, check the format (E.164 phone, single-script username) and the availability of
    identifiers for a new or changed account; the normalised values, or ``ValidationError`` keyed
    by field name."""
    cleaned = {kind: normalise(kind, value) for kind, value in values.items() if isinstance(value, str)}
    errors: dict[str, list[ValidationError]] = {}
    if cleaned.get(PHONE) and not E164.fullmatch(cleaned[PHONE]):
        errors[field_name(PHONE)] = [ValidationError(BAD_PHONE, code="invalid")]
    if check_script and cleaned.get(USERNAME):
        try:
            validate_single_script(cleaned[USERNAME])
        except ValidationError as error:
            errors[field_name(USERNAME)] = [error]
    if errors:
        raise ValidationError(errors)
    check_available(cleaned, exclude=exclude)
    return cleaned


# -- creating accounts --------------------------------------------------------------------------
def create_user(values: Mapping[str, Any], *, password: str | None = None, profile: Mapping[str, Any] | None = None,
                superuser: bool = False, check_script: bool = True) -> Any:
    """Create an account and its profile, its identifiers checked, in one transaction.

    ``values`` are the user model's fields (the username field included); ``profile`` the
    :class:`~identity.models.Profile`'s (``phone_number``, ``email_verified``...). ``password=None``
    makes an unusable password. Raises ``ValidationError`` keyed by field name when an identifier is
    malformed or taken, also when a concurrent creation took it first (the database decides).
    What sign-up, upstream sign-in and ``Authenticator.new_user`` call."""
    model = get_user_model()
    fields = user_fields(model)
    user_values = dict(values)
    profile_values = dict(profile or {})
    wanted = {kind: user_values.get(field) for kind, field in fields.items()}
    wanted[PHONE] = profile_values.get(PHONE_FIELD)
    cleaned = clean_identifiers(wanted, check_script=check_script)
    for kind, field in fields.items():
        if kind in cleaned:
            user_values[field] = cleaned[kind]
    if cleaned.get(PHONE):
        profile_values[PHONE_FIELD] = cleaned[PHONE]
    username = user_values.pop(model.USERNAME_FIELD)
    manager = model._default_manager
    create = manager.create_superuser if superuser else manager.create_user
    try:
        with transaction.atomic(using=router.db_for_write(model)):
            user = create(username, password=password, **user_values)
            Profile.objects.create(user=user, **profile_values)
    except IntegrityError:
        check_available(cleaned)  # a concurrent creation won: say which identifier it took
        raise ValidationError(TAKEN[USERNAME], code="taken") from None
    return user


# -- signing in ---------------------------------------------------------------------------------------
def find_user(identifier: str, kinds: Iterable[str] = KINDS, *, using: str | None = None) -> Any | None:
    """The one account whose identifier of one of ``kinds`` is ``identifier``, or None.

    Raises :class:`AmbiguousIdentifier` when several accounts hold it (legacy data): a caller must
    answer that exactly as it answers an unknown account or a wrong password, with the same hashing
    work, and never pick one of them. One query (the profile comes with the user)."""
    if not _storable(identifier):
        return None
    keys = {kind: comparison_key(kind, identifier) for kind in kinds
            if kind != PHONE or E164.fullmatch(normalise(PHONE, identifier))}
    keys = {kind: key for kind, key in keys.items() if key}
    if not keys:
        return None
    wanted = sorted(set(keys.values()))
    rows = _identifier_rows(len(wanted)).instances(*wanted, db=using or router.db_for_read(SignInIdentifier))
    users = {row.user_id: row.user for row in rows}
    if len(users) > 1:
        raise AmbiguousIdentifier(identifier)
    if not users:
        return None
    user = next(iter(users.values()))
    # Matched by a kind the caller accepts, on the account's own fields (the index may lag behind a
    # bulk update: then nobody matches rather than the wrong account).
    live = identifiers_of(user)
    if not any(kind in live and comparison_key(kind, live[kind]) == key for kind, key in keys.items()):
        return None
    row = next(row for row in rows if row.user_id == user.pk)
    user._portcullis_facts = {name: getattr(row, alias) for alias, (name, _) in _facts().items()}
    return user


# -- what a sign-in asks of the account it finds, in the same statement -------------------------------------
_FACT_PROVIDERS: list[Callable[[], Mapping[str, Any]]] = []
_FACTS: dict[str, tuple[str, Any]] | None = None  # alias -> (name, expression), once the apps are ready


def ask_with_account(provider: Callable[[], Mapping[str, Any]]) -> None:
    """Have :func:`find_user`'s statement answer ``provider()``'s expressions too (a name each, an
    expression over the identifier row: ``Exists(Device.objects.filter(user_id=OuterRef("user_id")))``,
    say), for :func:`facts_of`: what the sign-in asks next of the account it found (its second
    factors: ``authenticators``) costs no statement of its own. Called from ``AppConfig.ready()``;
    the provider is asked once, when the first look-up is compiled (every app registered by then)."""
    global _FACTS
    if provider in _FACT_PROVIDERS:
        return
    _FACT_PROVIDERS.append(provider)
    _FACTS = None
    _IDENTIFIER_ROWS.clear()


def facts_of(user: Any) -> Mapping[str, Any]:
    """What :func:`find_user` answered of ``user`` beside it (the registered names: see
    :func:`ask_with_account`), as the account was when it was looked up in this request; empty
    for an account loaded any other way."""
    return getattr(user, "_portcullis_facts", None) or {}


def _facts() -> dict[str, tuple[str, Any]]:
    """The registered facts by the annotation alias the look-up gives each (worked out once)."""
    global _FACTS
    if _FACTS is None:
        named = {name: expression for provider in _FACT_PROVIDERS for name, expression in provider().items()}
        _FACTS = {f"portcullis_fact_{index}": (name, expression) for index, (name, expression) in enumerate(named.items())}
    return _FACTS


_IDENTIFIER_ROWS: dict[int, PreparedQuery] = {}


def _identifier_rows(count: int) -> PreparedQuery:
    """The index rows (with their accounts, profiles and facts) of ``count`` comparison keys,
    compiled once per count: the sign-in's lookup on every attempt."""
    query = _IDENTIFIER_ROWS.get(count)
    if query is None:
        placeholders = tuple(f"portcullis-identifier-placeholder-{index}" for index in range(count))
        facts = {alias: expression for alias, (_, expression) in _facts().items()}
        query = _IDENTIFIER_ROWS[count] = PreparedQuery(
            lambda *keys: SignInIdentifier.objects.select_related("user__portcullis_profile").filter(key__in=keys)
            .annotate(**facts)[:8],
            placeholders)
    return query


def _storable(value: Any) -> bool:
    if not isinstance(value, str) or not value or len(value) > MAX_IDENTIFIER or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


# -- keeping the index in sync (receivers registered in identity/signals.py) ----------------------------------
PLAN = "_portcullis_identifier_plan"


def before_user_save(sender: type[Model], instance: Any, raw: bool = False, using: str | None = None,
                     update_fields: Any = None, **kwargs: Any) -> None:
    fields = user_fields(sender)
    if update_fields is not None and not set(fields.values()) & set(update_fields):
        return  # last_login and the like: no query
    values = {kind: getattr(instance, field, "") or "" for kind, field in fields.items()}
    _prepare(instance, instance.pk, tuple(fields), values, raw=raw, using=using)


def before_profile_save(sender: type[Model], instance: Profile, raw: bool = False, using: str | None = None,
                        update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and PHONE_FIELD not in update_fields:
        return
    _prepare(instance, instance.user_id, (PHONE,), {PHONE: instance.phone_number or ""}, raw=raw, using=using)


def after_save(sender: type[Model], instance: Any, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    plan = instance.__dict__.pop(PLAN, None)
    if plan is not None:
        user_id = instance.user_id if isinstance(instance, Profile) else instance.pk
        _apply(user_id, *plan, raw=raw, using=using)


def after_profile_delete(sender: type[Model], instance: Profile, using: str | None = None, **kwargs: Any) -> None:
    """A deleted profile takes its phone number out of the index."""
    _prepare(instance, instance.user_id, (PHONE,), {}, raw=False, using=using)
    after_save(sender, instance, using=using)


def after_identifier_delete(sender: type[Model], instance: SignInIdentifier, using: str | None = None,
                            **kwargs: Any) -> None:
    """When a legacy duplicate goes, the last account holding the key holds it alone again."""
    if instance.duplicate:
        remaining = SignInIdentifier.objects.db_manager(using).filter(key=instance.key)
        if remaining.count() == 1:
            remaining.update(duplicate=False)


def _prepare(instance: Model, user_id: Any, kinds: tuple[str, ...], values: Mapping[str, str], *,
             raw: bool, using: str | None) -> None:
    wanted = _wanted(values)
    own, taken = _lookup(set(wanted), user_id, using)
    if taken and not raw:
        raise _taken_error(taken, wanted)
    instance.__dict__[PLAN] = (kinds, wanted, own)


def _apply(user_id: Any, kinds: tuple[str, ...], wanted: dict[str, set[str]], own: list[SignInIdentifier], *,
           raw: bool, using: str | None) -> None:
    wanted = {key: set(kinds_) for key, kinds_ in wanted.items()}
    gone, changed = [], []
    for row in own:
        current = set(row.kinds.split(",")) - {""}
        remaining = (current - set(kinds)) | wanted.pop(row.key, set())
        if not remaining:
            gone.append(row.pk)
        elif remaining != current:
            row.kinds = ",".join(sorted(remaining))
            changed.append(row)
    manager = SignInIdentifier.objects.db_manager(using)
    if gone:
        manager.filter(pk__in=gone).delete()
    if changed:
        manager.bulk_update(changed, ["kinds"])
    for key, key_kinds in wanted.items():
        _insert(SignInIdentifier(user_id=user_id, key=key, kinds=",".join(sorted(key_kinds))), raw=raw, using=using)


def _insert(row: SignInIdentifier, *, raw: bool, using: str | None) -> None:
    """Insert one row; the unique constraint decides a race."""
    db = using or router.db_for_write(SignInIdentifier)
    rolls_back = transaction.get_connection(db).in_atomic_block
    try:
        with transaction.atomic(using=db):
            row.save(using=db)
    except IntegrityError:
        if rolls_back and not raw:
            # The account's own write is in the same transaction: refusing undoes all of it.
            raise _taken_error([row.key], {row.key: set(row.kinds.split(","))}) from None
        # The account is written already (autocommit, or fixtures): record the collision, so that
        # signing in by this identifier refuses to guess between the accounts.
        SignInIdentifier.objects.db_manager(db).filter(key=row.key).update(duplicate=True)
        row.duplicate = True
        row.save(using=db)
        if not raw:
            raise _taken_error([row.key], {row.key: set(row.kinds.split(","))}) from None


# -- rebuilding --------------------------------------------------------------------------------------
def index_rows(identifiers: Iterable[tuple[Any, str, str]]) -> list[tuple[Any, str, str, bool]]:
    """``(user_id, kind, value)`` → ``(user_id, key, kinds, duplicate)``, one per account and key; a
    key that several accounts hold is kept for each of them, marked duplicate. Shared by the data
    migration (historical models) and :func:`rebuild_index`."""
    owners: dict[str, dict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
    for user_id, kind, value in identifiers:
        if isinstance(value, str) and value.strip():
            owners[comparison_key(kind, value)][user_id].add(kind)
    return [(user_id, key, ",".join(sorted(kinds)), len(holders) > 1)
            for key, holders in owners.items() for user_id, kinds in holders.items()]


def read_identifiers(user_model: type[Model], profile_model: type[Model], fields: Mapping[str, str],
                     using: str) -> Iterable[tuple[Any, str, str]]:
    """Every ``(user_id, kind, value)`` of the database, from the given (maybe historical) models."""
    names = list(fields.items())
    for row in user_model._default_manager.using(using).values_list("pk", *[field for _kind, field in names]).iterator():
        for (kind, _field), value in zip(names, row[1:], strict=True):
            yield row[0], kind, value
    phones = profile_model._default_manager.using(using).exclude(**{f"{PHONE_FIELD}__isnull": True})
    for user_id, phone in phones.values_list("user_id", PHONE_FIELD).iterator():
        yield user_id, PHONE, phone


def rebuild_index(using: str | None = None) -> list[tuple[Any, str, str, bool]]:
    """Recompute the whole index from the accounts (after bulk imports or updates); its rows."""
    db = using or router.db_for_write(SignInIdentifier)
    rows = index_rows(read_identifiers(get_user_model(), Profile, user_fields(), db))
    with transaction.atomic(using=db):
        with connections[db].cursor() as cursor:  # one statement, no per-row delete signals
            cursor.execute(f"DELETE FROM {connections[db].ops.quote_name(SignInIdentifier._meta.db_table)}")
        SignInIdentifier.objects.using(db).bulk_create(
            [SignInIdentifier(user_id=user_id, key=key, kinds=kinds, duplicate=duplicate)
             for user_id, key, kinds, duplicate in rows], batch_size=1000)
    return rows
