"""The configuration document of SPEC §5: read it (``export``), check it (``validate``), apply it.

The parts that exist today: ``experience`` (the default sign-in experience's policies),
``applications`` (``{client_id: {"first_party", "headless"}}``) and ``authenticators`` (name, type,
title, enabled, order, options). ``manage.py portcullis_config`` is the command-line face; the admin
form of the default experience checks its values with :func:`validate_experience` too, so each rule is
written once, here.

Applying checks the whole document first and reports every problem with its JSON path; only a
document without problems is applied, in one transaction. It sets what the document names and leaves
what it omits; applying the same document twice changes nothing the second time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.validators import validate_slug
from django.db import transaction
from oauth2_provider.models import get_application_model

from authenticators.models import Authenticator
from authenticators.registry import registry
from experience import access, branding
from experience.models import ApplicationExperience, Experience, image_name
from experience.policy import Policy, merge
from identity.models import ApplicationSettings

# SPEC §5's sets of values.
MFA_POLICIES = ("off", "optional", "required")
MFA_FACTORS = ("totp", "backup_code", "email_code", "sms_code")
CAPTCHA_POLICIES = ("off", "risk", "always")
SIGN_UP_IDENTIFIERS = ("email", "phone", "username")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128  # a longer minimum would refuse what password managers make
SIGN_IN_URL_MAX_LENGTH = 200

TOP_KEYS = ("experience", "applications", "authenticators")
EXPERIENCE_KEYS = tuple(Experience.FIELDS)
BRANDING_FIELDS: dict[str, str] = Experience.FIELDS["branding"]  # type: ignore[assignment]
BRANDING_KEYS = tuple(BRANDING_FIELDS)
IMAGE_KEYS = ("logo_url", "logo_dark_url", "favicon_url")
SUB_KEYS = {key: tuple(fields) for key, fields in Experience.FIELDS.items() if isinstance(fields, dict)}
APPLICATION_KEYS = ("first_party", "headless", "experience")
AUTHENTICATOR_KEYS = ("name", "auth_type", "title", "enabled", "sort_order", "options")
TITLE_MAX_LENGTH = Authenticator._meta.get_field("title").max_length or 100

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")


def join(path: str, key: str | int) -> str:
    """``path`` extended by an object key or a list index, as a JSON path (``a.b[2]["x.y"]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _NAME.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


class Problems:
    """Every problem found in a document, each with its JSON path."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path or "$", message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


_ITEM = re.compile(r"(.*)\[(\d+)\]\Z")


def field_message(document: dict[str, Any], path: str, message: str) -> str:
    """A problem as a form field shows it: a list entry's problem names the entry (the field is
    the whole list, one entry per line) unless the message does already."""
    match = _ITEM.match(path)
    if match is None:
        return message
    value: Any = document
    for key in match.group(1).split("."):
        value = value.get(key) if isinstance(value, dict) else None
    index = int(match.group(2))
    if not isinstance(value, list) or index >= len(value):
        return message
    item = json.dumps(value[index], ensure_ascii=False)
    return message if item in message else f"{item}: {message}"


class DocumentInvalid(Exception):
    def __init__(self, problems: Problems) -> None:
        super().__init__(f"{len(problems)} problem(s) in the document")
        self.problems = problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _object(value: Any, path: str, problems: Problems, known: tuple[str, ...],
            reserved: tuple[str, ...] = ()) -> bool:
    """Whether ``value`` is an object; its unknown and reserved keys are problems."""
    if not isinstance(value, dict):
        problems.add(path, f"must be an object, not {_type_name(value)}")
        return False
    for key in value:
        if key in reserved:
            problems.add(join(path, key), "not supported by this version of Portcullis yet")
        elif key not in known:
            problems.add(join(path, key), f"unknown key (known: {', '.join(known)})")
    return True


def _boolean(value: dict[str, Any], key: str, path: str, problems: Problems) -> None:
    if key in value and not isinstance(value[key], bool):
        problems.add(join(path, key), f"must be true or false, not {_type_name(value[key])}")


def _choice(value: dict[str, Any], key: str, path: str, problems: Problems, choices: tuple[str, ...]) -> None:
    if key in value and value[key] not in choices:
        problems.add(join(path, key), f"must be one of {', '.join(choices)}, not {json.dumps(value[key])}")


def _choices(value: dict[str, Any], key: str, path: str, problems: Problems, choices: tuple[str, ...],
             *, allow_empty: bool) -> None:
    if key not in value:
        return
    items, where = value[key], join(path, key)
    if not isinstance(items, list):
        problems.add(where, f"must be a list, not {_type_name(items)}")
        return
    if not items and not allow_empty:
        problems.add(where, "must name at least one")
    for index, item in enumerate(items):
        if item not in choices:
            problems.add(join(where, index), f"must be one of {', '.join(choices)}, not {json.dumps(item)}")
        elif items.index(item) != index:
            problems.add(join(where, index), f"{json.dumps(item)} is listed twice")


def sign_in_url_problem(value: str) -> str | None:
    """Why ``value`` is not a path on this site (None when it is one, or empty)."""
    if value == "":
        return None
    if len(value) > SIGN_IN_URL_MAX_LENGTH:
        return f"must be at most {SIGN_IN_URL_MAX_LENGTH} characters"
    if not value.startswith("/") or value.startswith("//") or "\\" in value or not value.isprintable() \
            or any(character.isspace() for character in value):
        return "must be a path on this site, starting with a single /"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "must be a path on this site, starting with a single /"
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return "must be a path without query or fragment (the interaction is added as ?interaction=)"
    return None


def validate_experience(value: Any, path: str, problems: Problems, *, names: dict[str, str],
                        current: dict[str, Any] | None = None, complete: bool = False) -> None:
    """Check an ``experience`` document (partial unless ``complete``) at ``path``.

    ``names`` are the authenticators that exist (after the document's own are applied), each with
    its type: ``authenticators`` lists first factors only (second factors are ``mfa.factors``'s);
    ``current`` is the stored document the partial one lands on, for the rules that look at
    several keys at once."""
    if not _object(value, path, problems, EXPERIENCE_KEYS):
        return
    if "branding" in value:
        _validate_branding(value["branding"], join(path, "branding"), problems)
    if "language" in value and value["language"] != "" and value["language"] not in language_codes():
        problems.add(join(path, "language"), f"must be one of {', '.join(language_codes())} or empty, "
                                             f"not {json.dumps(value['language'])}")
    if "access_rules" in value:
        _validate_access_rules(value["access_rules"], join(path, "access_rules"), problems)
    if complete:
        for key in EXPERIENCE_KEYS:
            if key not in value and key != "authenticators":
                problems.add(join(path, key), "missing")
    if "authenticators" in value:
        where, items = join(path, "authenticators"), value["authenticators"]
        if not isinstance(items, list):
            problems.add(where, f"must be a list of authenticator names, not {_type_name(items)}")
        elif not items:
            problems.add(where, "must name at least one authenticator")
        else:
            for index, item in enumerate(items):
                if not isinstance(item, str):
                    problems.add(join(where, index), f"must be an authenticator name, not {_type_name(item)}")
                elif item not in names:
                    problems.add(join(where, index), f"no authenticator is named {json.dumps(item)}")
                elif (auth_type := registry.get(names[item])) is not None and not auth_type.is_first_factor:
                    problems.add(join(where, index),
                                 f"{json.dumps(item)} is a second factor: it cannot sign in on its own "
                                 f"(list sign-in methods here; second factors are chosen by mfa.factors)")
                elif items.index(item) != index:
                    problems.add(join(where, index), f"{json.dumps(item)} is listed twice")
    sign_up = value.get("sign_up")
    if "sign_up" in value and _object(sign_up, join(path, "sign_up"), problems, ("enabled", "identifiers", "verify")):
        _boolean(sign_up, "enabled", join(path, "sign_up"), problems)
        _boolean(sign_up, "verify", join(path, "sign_up"), problems)
        _choices(sign_up, "identifiers", join(path, "sign_up"), problems, SIGN_UP_IDENTIFIERS, allow_empty=False)
    password = value.get("password_policy")
    where = join(path, "password_policy")
    if "password_policy" in value and _object(password, where, problems, ("min_length", "blocklist", "similarity")):
        _boolean(password, "blocklist", where, problems)
        _boolean(password, "similarity", where, problems)
        if "min_length" in password:
            length = password["min_length"]
            if not _is_int(length):
                problems.add(join(where, "min_length"), f"must be a whole number, not {_type_name(length)}")
            elif not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH:
                problems.add(join(where, "min_length"),
                             f"must be between {MIN_PASSWORD_LENGTH} and {MAX_PASSWORD_LENGTH}, not {length}")
    mfa = value.get("mfa")
    if "mfa" in value and _object(mfa, join(path, "mfa"), problems, ("policy", "factors")):
        _choice(mfa, "policy", join(path, "mfa"), problems, MFA_POLICIES)
        _choices(mfa, "factors", join(path, "mfa"), problems, MFA_FACTORS, allow_empty=True)
        merged = {**((current or {}).get("mfa") or {}), **mfa}
        factors = merged.get("factors")
        if merged.get("policy") == "required" and isinstance(factors, list) \
                and not [factor for factor in factors if factor != "email_code"]:
            problems.add(join(join(path, "mfa"), "factors"),
                         "a required second factor needs a factor besides email_code (totp, backup_code or sms_code)")
    captcha = value.get("captcha")
    if "captcha" in value and _object(captcha, join(path, "captcha"), problems, ("policy",)):
        _choice(captcha, "policy", join(path, "captcha"), problems, CAPTCHA_POLICIES)
    if "sign_in_url" in value:
        url = value["sign_in_url"]
        if not isinstance(url, str):
            problems.add(join(path, "sign_in_url"), f"must be a string, not {_type_name(url)}")
        elif (problem := sign_in_url_problem(url)) is not None:
            problems.add(join(path, "sign_in_url"), problem)
    if complete:  # an admin form: every sub-key present (the images are checked as uploads)
        for key, sub_keys in SUB_KEYS.items():
            part = value.get(key)
            if isinstance(part, dict):
                for sub_key in sub_keys:
                    if sub_key not in part and sub_key not in IMAGE_KEYS:
                        problems.add(join(join(path, key), sub_key), "missing")


def language_codes() -> list[str]:
    return [code for code, _name in django_settings.LANGUAGES]


def _validate_branding(value: Any, path: str, problems: Problems) -> None:
    if not _object(value, path, problems, BRANDING_KEYS):
        return
    checks = {"primary_color": branding.colour_problem, "primary_color_dark": branding.colour_problem,
              "custom_css": branding.css_problem, "terms_url": branding.link_problem,
              "privacy_url": branding.link_problem, "support_email": branding.email_problem}
    for key, item in value.items():
        where = join(path, key)
        if not isinstance(item, str):
            problems.add(where, f"must be a string, not {_type_name(item)}")
        elif key == "display_name" and (len(item) > 100 or not item.isprintable()):
            problems.add(where, "must be at most 100 printable characters")
        elif key in IMAGE_KEYS and image_name(item) is None:
            problems.add(where, f"must be empty or the URL of a branding image uploaded here "
                                f"({django_settings.MEDIA_URL}branding/...): images are uploaded in admin")
        elif key in checks and (problem := checks[key](item)) is not None:
            problems.add(where, problem)


def _validate_access_rules(value: Any, path: str, problems: Problems) -> None:
    if not _object(value, path, problems, access.LIST_KEYS):
        return
    for key, items in value.items():
        where = join(path, key)
        if not isinstance(items, list):
            problems.add(where, f"must be a list, not {_type_name(items)}")
            continue
        if len(items) > access.MAX_ENTRIES:
            problems.add(where, f"must have at most {access.MAX_ENTRIES} entries")
            continue
        for index, item in enumerate(items):
            if (problem := access.PROBLEMS[key](item)) is not None:
                problems.add(join(where, index), problem)
            elif items.index(item) != index:
                problems.add(join(where, index), f"{json.dumps(item)} is listed twice")


def patch(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` applied to ``stored`` as a JSON Merge Patch (RFC 7396): objects merge per key, a
    ``null`` removes the key (the application inherits it again), anything else replaces."""
    result = dict(stored)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = patch(result[key], value)
        elif isinstance(value, dict):
            result[key] = patch({}, value)
        else:
            result[key] = value
    return {key: value for key, value in result.items() if value != {}}


def validate_overrides(value: Any, path: str, problems: Problems, *, names: dict[str, str] | None = None,
                       default: dict[str, Any] | None = None) -> None:
    """Check an application's overrides (a partial ``experience``), and the experience they make
    merged over ``default`` (the stored default experience when not given)."""
    if default is None:
        default = current_default()
    validate_experience(value, path, problems, names=authenticator_names() if names is None else names,
                        current=merge(default, value) if isinstance(value, dict) else default)


def current_default() -> dict[str, Any]:
    row = default_experience()
    return (row or Experience()).policies()


def authenticator_names() -> dict[str, str]:
    """Every stored authenticator's name and its type."""
    return dict(Authenticator.objects.values_list("name", "auth_type"))


def shown_by_default() -> list[str]:
    """What an experience without a list of its own shows: every enabled first factor, in order."""
    return [a.name for a in Policy().first_factors()]


# -- export -------------------------------------------------------------------------------------------

def default_experience() -> Experience | None:
    return Experience.objects.filter(key=Experience.DEFAULT).first()


def export_experience() -> dict[str, Any]:
    """The default experience's policies; without a stored list, the first factors it shows."""
    row = default_experience() or Experience()
    document = row.policies()
    if document["authenticators"] is None:
        document["authenticators"] = shown_by_default()
    return document


def export_authenticator(authenticator: Authenticator) -> dict[str, Any]:
    """One authenticator; its options as its type reads them (every option of the settings form, a
    missing one at its initial value), so that the same configuration exports the same document
    whether its options were stored as ``{}`` (the data migrations) or in full (admin, apply)."""
    auth_type = authenticator.type
    effective = auth_type.effective_options(authenticator.options) if auth_type is not None else None
    options = dict(authenticator.options or {}) if effective is None else effective
    for name in options:  # a type that is not registered (any more): which options are secret is unknown
        if auth_type is None or name in auth_type.secret_options:
            options[name] = None
    return {"name": authenticator.name, "auth_type": authenticator.auth_type, "title": authenticator.title,
            "enabled": authenticator.enabled, "sort_order": authenticator.sort_order, "options": options}


def export() -> dict[str, Any]:
    """SPEC §5's document (secret options as null); an application's ``experience`` only when it
    has overrides."""
    applications = get_application_model().objects.select_related("portcullis_settings", "portcullis_experience") \
        .order_by("client_id")
    exported: dict[str, Any] = {}
    for application in applications:
        settings = ApplicationSettings.for_application(application)
        entry: dict[str, Any] = {"first_party": settings.first_party, "headless": settings.headless_api}
        overrides = getattr(application, "portcullis_experience", None)
        if overrides is not None:
            entry["experience"] = overrides.document()
        exported[application.client_id] = entry
    return {
        "experience": export_experience(),
        "applications": exported,
        "authenticators": [export_authenticator(a) for a in Authenticator.objects.order_by("sort_order", "name")],
    }


# -- validate -----------------------------------------------------------------------------------------

@dataclass
class Plan:
    """What a valid document changes: filled by :func:`validate`, carried out by :func:`apply`."""

    experience: dict[str, Any] | None = None
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    authenticators: list[dict[str, Any]] = field(default_factory=list)  # cleaned, secrets filled in
    prune: list[str] = field(default_factory=list)  # authenticator names to delete
    # client_id -> the application's whole overrides after the document (None: remove them)
    application_experiences: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def _validate_options(entry: dict[str, Any], path: str, problems: Problems, stored: Authenticator | None) -> None:
    """The options through the type's settings form. They merge per key onto the stored options, whose
    missing keys are the form's initial values (a new authenticator: onto those values); a null secret is
    the stored one. Options that clean to what is stored, as the type reads it, are no change."""
    auth_type = registry.get(entry.get("auth_type", stored.auth_type if stored else ""))
    where = join(path, "options")
    given = entry.get("options", {})
    if not isinstance(given, dict):
        problems.add(where, f"must be an object, not {_type_name(given)}")
        return
    if auth_type is None:  # a stored authenticator of a type not registered here: its options stay
        if stored is not None and any(value is not None for value in given.values()):
            problems.add(where, f"the type {stored.auth_type} is not registered: its options cannot be checked")
        entry.pop("options", None)
        return
    if stored is not None and "options" not in entry:
        return  # options omitted: the stored ones stay
    form_class = auth_type.settings_form
    if form_class is None:
        if given:
            problems.add(where, f"the type {auth_type.name} takes no options")
        entry["options"] = {}
        return
    for key in given:
        if key not in form_class.base_fields:
            problems.add(join(where, key), f"unknown option of the type {auth_type.name}")
    base = {**auth_type.initial_options(), **(stored.options or {} if stored is not None else {})}
    options = {**base, **{key: value for key, value in given.items()
                          if not (value is None and key in auth_type.secret_options)}}
    form = form_class(data=options)
    if not form.is_valid():
        for name, messages in form.errors.get_json_data().items():
            for message in messages:
                problems.add(where if name == "__all__" else join(where, name), str(message["message"]))
        return
    if stored is not None and auth_type.effective_options(stored.options) == form.cleaned_data:
        entry.pop("options", None)  # the same settings: the stored options stay as they are
        return
    entry["options"] = dict(form.cleaned_data)


def _validate_authenticators(value: Any, problems: Problems, plan: Plan) -> dict[str, str]:
    """Check the ``authenticators`` list; the names that exist once it is applied, with their types."""
    stored = {a.name: a for a in Authenticator.objects.all()}
    types = {name: a.auth_type for name, a in stored.items()}
    if not isinstance(value, list):
        problems.add("authenticators", f"must be a list, not {_type_name(value)}")
        return types
    named: set[str] = set()
    for index, entry in enumerate(value):
        path = join("authenticators", index)
        if not _object(entry, path, problems, AUTHENTICATOR_KEYS):
            continue
        entry = dict(entry)
        name = entry.get("name")
        if not isinstance(name, str):
            problems.add(join(path, "name"), "missing" if "name" not in entry else "must be a string")
            continue
        try:
            validate_slug(name)
            if len(name) > 64:
                raise ValueError
        except Exception:  # noqa: BLE001 - Django's ValidationError or the length
            problems.add(join(path, "name"), "must be a slug (letters, digits, - and _), at most 64 characters")
            continue
        if name in named:
            problems.add(join(path, "name"), f"{json.dumps(name)} is listed twice")
            continue
        named.add(name)
        if name not in types:  # a new one: of the type it names
            types[name] = entry["auth_type"] if isinstance(entry.get("auth_type"), str) else ""
        existing = stored.get(name)
        if "auth_type" not in entry and existing is None:
            problems.add(join(path, "auth_type"), "missing (a new authenticator needs its type)")
        elif "auth_type" in entry:
            auth_type = entry["auth_type"]
            unregistered_but_stored = existing is not None and existing.auth_type == auth_type
            if not isinstance(auth_type, str) or (auth_type not in registry and not unregistered_but_stored):
                problems.add(join(path, "auth_type"), f"unknown type {json.dumps(auth_type)} "
                                                      f"(registered: {', '.join(t.name for t in registry)})")
                continue
            if existing is not None and existing.auth_type != auth_type:
                problems.add(join(path, "auth_type"),
                             f"the authenticator {name} is of type {existing.auth_type}: its type cannot change")
                continue
        if "title" in entry:
            title = entry["title"]
            if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX_LENGTH:
                problems.add(join(path, "title"), f"must be a non-empty string of at most {TITLE_MAX_LENGTH} characters")
        _boolean(entry, "enabled", path, problems)
        if "sort_order" in entry and (not _is_int(entry["sort_order"]) or abs(entry["sort_order"]) > 2**31 - 1):
            problems.add(join(path, "sort_order"), "must be a whole number")
        _validate_options(entry, path, problems, existing)
        plan.authenticators.append(entry)
    return types


def _validate_applications(value: Any, problems: Problems, plan: Plan, names: dict[str, str],
                           default: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        problems.add("applications", f"must be an object keyed by client_id, not {_type_name(value)}")
        return
    known = set(get_application_model().objects.filter(client_id__in=list(value)).values_list("client_id", flat=True))
    stored = {row.application.client_id: row for row in ApplicationExperience.objects.select_related("application")
              .filter(application__client_id__in=list(known))}
    for client_id, settings in value.items():
        path = join("applications", client_id)
        if client_id not in known:
            problems.add(path, f"no application has the client_id {json.dumps(client_id)}")
            continue
        if not _object(settings, path, problems, APPLICATION_KEYS):
            continue
        _boolean(settings, "first_party", path, problems)
        _boolean(settings, "headless", path, problems)
        plan.applications[client_id] = {key: settings[key] for key in ("first_party", "headless") if key in settings}
        if "experience" in settings:
            changes = settings["experience"]
            where = join(path, "experience")
            if changes is None:  # no overrides: the default experience
                plan.application_experiences[client_id] = None
                continue
            if not isinstance(changes, dict):
                problems.add(where, f"must be an object (the values this application changes) or null, "
                                    f"not {_type_name(changes)}")
                continue
            row = stored.get(client_id)
            overrides = patch(row.document() if row is not None else {}, changes)
            validate_overrides(overrides, where, problems, names=names, default=default)
            plan.application_experiences[client_id] = overrides


def validate(document: Any, *, prune: bool = False) -> Plan:
    """Check the whole document; :class:`DocumentInvalid` with every problem, else what to change."""
    problems = Problems()
    plan = Plan()
    if not _object(document, "", problems, TOP_KEYS):
        raise DocumentInvalid(problems)
    names = authenticator_names()
    if "authenticators" in document:
        names = _validate_authenticators(document["authenticators"], problems, plan)
        if prune:
            keep = {entry["name"] for entry in plan.authenticators}
            plan.prune = sorted(name for name in authenticator_names() if name not in keep)
            names = {name: auth_type for name, auth_type in names.items() if name not in plan.prune}
    row = default_experience()
    current = row.policies() if row is not None else Experience().policies()
    if "experience" in document:
        validate_experience(document["experience"], "experience", problems, names=names, current=current)
        if isinstance(document["experience"], dict):
            plan.experience = document["experience"]
    default = merge(current, plan.experience or {})
    if "applications" in document:
        _validate_applications(document["applications"], problems, plan, names, default)
        if prune and isinstance(document["applications"], dict):
            named = {client_id for client_id, entry in document["applications"].items()
                     if isinstance(entry, dict) and "experience" in entry}
            for client_id in ApplicationExperience.objects.exclude(application__client_id__in=named) \
                    .values_list("application__client_id", flat=True):
                plan.application_experiences[client_id] = None
    shown = (plan.experience or {}).get("authenticators", current["authenticators"]) or []
    if not (plan.experience and "authenticators" in plan.experience):  # the stored list must survive a prune
        for name in shown:
            if name in plan.prune:
                problems.add("experience.authenticators",
                             f"the default experience shows {name}, which --prune would remove")
    if plan.prune:  # nor may an application's stored list that the document leaves as it is
        for overridden in ApplicationExperience.objects.select_related("application"):
            client_id = overridden.application.client_id
            if client_id in plan.application_experiences:
                continue
            for name in overridden.overrides.get("authenticators") or []:
                if name in plan.prune:
                    problems.add(join(join(join("applications", client_id), "experience"), "authenticators"),
                                 f"the application's experience shows {name}, which --prune would remove")
    if problems:
        raise DocumentInvalid(problems)
    return plan


# -- apply --------------------------------------------------------------------------------------------

@dataclass
class Changes:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def __bool__(self) -> bool:
        return bool(self.lines)


def _apply_authenticator(entry: dict[str, Any], changes: Changes) -> None:
    authenticator = Authenticator.objects.select_for_update().filter(name=entry["name"]).first()
    created = authenticator is None
    if authenticator is None:
        auth_type = registry.get(entry["auth_type"])
        authenticator = Authenticator(name=entry["name"], auth_type=entry["auth_type"],
                                      title=str(auth_type.title if auth_type else entry["name"]))
    changed = [key for key in ("auth_type", "title", "enabled", "sort_order", "options")
               if key in entry and getattr(authenticator, key) != entry[key]]
    for key in changed:
        setattr(authenticator, key, entry[key])
    if created or changed:
        authenticator.save()
        changes.add(f"authenticator {authenticator.name}: " + ("created" if created else "changed " + ", ".join(changed)))


def _apply_experience(document: dict[str, Any], changes: Changes) -> None:
    row = Experience.objects.select_for_update().filter(key=Experience.DEFAULT).first()
    created = row is None
    if row is None:
        row = Experience(key=Experience.DEFAULT)
    before = row.policies()
    row.set_policies(document)
    after = row.policies()
    if created or before != after:
        row.save()
        changed = [key for key in EXPERIENCE_KEYS if before[key] != after[key]]
        changes.add("default experience: " + ("created" if created else "changed " + ", ".join(changed)))


def _apply_application(client_id: str, values: dict[str, Any], changes: Changes) -> None:
    application = get_application_model().objects.get(client_id=client_id)
    # A missing row holds the defaults: it is made only when a value differs from them.
    settings = ApplicationSettings.objects.select_for_update().filter(application=application).first() \
        or ApplicationSettings(application=application)
    fields = {"first_party": "first_party", "headless": "headless_api"}
    changed = [key for key, value in values.items() if getattr(settings, fields[key]) != value]
    for key in changed:
        setattr(settings, fields[key], values[key])
    if changed:
        settings.save()
        changes.add(f"application {client_id}: changed " + ", ".join(changed))


def _apply_application_experience(client_id: str, overrides: dict[str, Any] | None, changes: Changes) -> None:
    row = ApplicationExperience.objects.select_for_update().filter(application__client_id=client_id).first()
    if overrides is None:
        if row is not None:
            row.delete()
            changes.add(f"application {client_id}: experience overrides removed")
        return
    if row is None:
        row = ApplicationExperience(application=get_application_model().objects.get(client_id=client_id))
    elif row.document() == overrides:
        return
    created = row.pk is None
    row.set_document(overrides)
    row.save()
    changes.add(f"application {client_id}: experience " + ("overrides created" if created else "overrides changed"))


def apply(document: Any, *, prune: bool = False, check: bool = False) -> Changes:
    """Validate the whole ``document``, then (unless ``check``) apply it in one transaction.

    :class:`DocumentInvalid` lists every problem; then nothing has changed."""
    changes = Changes()
    with transaction.atomic():
        plan = validate(document, prune=prune)
        if check:
            return changes
        for entry in plan.authenticators:
            _apply_authenticator(entry, changes)
        for client_id, values in plan.applications.items():
            _apply_application(client_id, values, changes)
        if plan.experience is not None:
            _apply_experience(plan.experience, changes)
        for client_id, overrides in plan.application_experiences.items():
            _apply_application_experience(client_id, overrides, changes)
        for name in plan.prune:
            Authenticator.objects.filter(name=name).delete()
            changes.add(f"authenticator {name}: removed")
    return changes
