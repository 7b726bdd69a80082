"""The contract of an authenticator type.

A type is one class; its **kind** is the base class it derives from, and tells the engine how the
type is driven (never guessed from its forms):

============================  ==================================================================
kind (base class)             how the engine drives it
============================  ==================================================================
``"form"`` (:class:`BaseAuth`, one step: the sign-in form's data go to ``validate(data) -> user``
:class:`FormAuth`)            (the ``password`` type).
``"code"`` (:class:`CodeAuth`) two steps: ``send_code(data)`` delivers a one-time code to an
                              address and answers a handle; ``check_code(code_id, code)`` answers
                              the user. The base does the code itself: 6 digits from ``secrets``,
                              stored as an HMAC, expiry, attempts, cool-down, daily limit per
                              destination and single use under concurrency. A type writes
                              ``destination(data)``, ``user_for(destination)`` and ``deliver()``.
``"redirect"``                two legs through an upstream: ``begin(redirect_uri)`` answers the
(:class:`RedirectAuth`)       upstream URL and the pending state to keep; ``finish(params,
                              pending)`` checks the state (single use, expiry) and calls the
                              type's ``complete(params, pending) -> user``. A type writes
                              ``authorize_url()`` and ``complete()``.
``"second_factor"``           after the user is identified: ``enrolled(user)`` says whether the
(:class:`SecondFactorAuth`)   user has this factor, ``verify_for(user, data)`` checks it.
============================  ==================================================================

What every type gets: ``options`` (validated by its settings form), ``user``, ``check()``,
``sign_in()`` (refuses a disabled authenticator and inactive users), ``sign_out()``, the
:class:`~authenticators.models.Authenticator` helpers ``find_user`` / ``new_user`` /
``find_or_create_user``, and the ``policy`` of the application the user signs in to (which the
engine hands over). Types never touch sessions, tokens or audit events: the engine does.

Failures are :class:`AuthError` with a stable code (``invalid_credentials``, ``invalid_code``,
``code_expired``, ``attempts_exceeded``, ``too_many_requests``, ...); the engine maps each code to
its kind, status and message (``experience.errors``), so a type's own code needs its own message.
"""

from __future__ import annotations

import hmac
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import router, transaction
from django.db.models import Exists, F, IntegerField, OuterRef, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from identity import metrics
from identity.app_settings import setting
from identity.identifiers import facts_of
from identity.prepared import PreparedQuery

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.models import Authenticator


class AuthError(Exception):
    """A failed authentication: a stable ``code``, an optional message of the type's own (the
    engine's table has the messages of the common codes) and data for the face (``retry_after``).

    ``reason`` (default: the code) is for the audit log only, never shown: e.g. the code
    ``invalid_credentials`` with the reason ``ambiguous_identifier``."""

    def __init__(self, code: str, message: Any = None, *, reason: str = "", **data: Any) -> None:
        self.code = code
        self.message = message
        self.reason = reason or code
        self.data = data
        super().__init__(code)


class Auth(ABC):
    """What every type offers (NocoBase's ``Auth``)."""

    kind: ClassVar[str] = "form"

    def __init__(self, authenticator: Authenticator, request: HttpRequest | None = None, *,
                 policy: Any = None, binding: str = "") -> None:
        self.authenticator = authenticator
        self.request = request
        self.policy = policy  # experience.policy.Policy of the application, when the engine knows it
        self.binding = binding  # what one-time state is bound to: the interaction's id
        self._user: Any = None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.authenticator.options or {})

    @property
    def user(self) -> Any:
        """The user this instance authenticated, once ``sign_in`` or ``check`` succeeded."""
        return self._user

    @user.setter
    def user(self, value: Any) -> None:
        self._user = value

    @abstractmethod
    def check(self) -> Any | None:
        """The user the current request is signed in as, or None."""

    @abstractmethod
    def validate(self, data: dict[str, Any]) -> Any:
        """Check the submitted credentials; return the user or raise ``AuthError``."""

    @abstractmethod
    def sign_in(self, data: dict[str, Any]) -> Any:
        """Validate and remember the user on this instance; return the user."""

    @abstractmethod
    def sign_out(self) -> None:
        """Forget the user."""

    def amr(self) -> list[str]:
        """Authentication method references (RFC 8176) this type proves."""
        return []


class BaseAuth(Auth):
    """The common implementation: a form type writes only ``validate`` (and ``amr``)."""

    def check(self) -> Any | None:
        request = self.request
        user = getattr(request, "user", None) if request is not None else None
        if user is not None and user.is_authenticated:
            self.user = user
            return user
        return None

    def sign_in(self, data: dict[str, Any]) -> Any:
        if not self.authenticator.enabled:
            raise AuthError("disabled")
        user = self.validate(data)
        if user is None or not getattr(user, "is_active", False):
            raise AuthError("invalid_credentials")
        self.user = user
        return user

    def sign_out(self) -> None:
        self.user = None


class FormAuth(BaseAuth):
    """A one-step type: its sign-in form's cleaned data go to ``validate``."""

    kind = "form"


# -- one-time codes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SentCode:
    """What a face tells the client after ``send_code`` (SPEC's OtpCode)."""

    code_id: str
    timeout: int
    resend_after: int


def code_digest(code_id: str, code: str) -> str:
    """Codes are stored as an HMAC keyed by SECRET_KEY and bound to their handle."""
    return salted_hmac("portcullis.one-time-code", f"{code_id}:{code}", algorithm="sha256").hexdigest()


class CodeAuth(BaseAuth):
    """A two-step type: a code sent to an address, then checked.

    A type writes :meth:`destination` (the normalised address from the submitted data),
    :meth:`user_for` (the account of an address, or None) and :meth:`deliver` (send the code). The
    base answers an unknown address exactly as a known one (a code row is stored, nothing is sent
    unless the type's :meth:`deliver_unknown` sends a notice), so the answer never says whether an
    account exists. Sending waits for the cool-down per address and per account (any code to any
    address of that account); :meth:`deliver` raises ``AuthError("delivery_failed")`` when the
    message could not be handed over (the code is then forgotten).
    """

    kind = "code"
    # What the code is for (stored with it): "sign_in", "forgot_password", or "sign_up", which
    # verifies an address that has no account yet, so its code is delivered to every address (the
    # engine sets it per interaction; the answer is the same whether or not an account exists).
    purpose: str = "sign_in"
    recipient: Any = None  # the account the last send_code reached (None: an unknown address)
    code_id: str = ""  # the handle of the code being sent: deliver() may put it in a link (a magic link)
    channel: str = "email"  # how deliver() sends the code: the label of the codes-sent metric (identity.metrics)

    # -- what a type writes ------------------------------------------------------------------
    @abstractmethod
    def destination(self, data: dict[str, Any]) -> str:
        """The normalised address (e-mail, E.164 phone) in ``data``; ``AuthError("invalid_input")``."""

    @abstractmethod
    def user_for(self, destination: str) -> Any | None:
        """The active account this address signs in to, or None."""

    @abstractmethod
    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        """Send ``code`` to ``destination`` (never log it). ``user`` is None for a sign-up's code
        to an address without an account (:attr:`purpose` ``"sign_up"``)."""

    def deliver_unknown(self, destination: str, *, timeout: int) -> None:
        """Called instead of :meth:`deliver` for an address without an account: by default nothing
        is sent (a type may send a notice that no account exists)."""

    # -- settings --------------------------------------------------------------------------------
    @property
    def code_ttl(self) -> int:
        return int(self.options.get("code_ttl") or setting("CODE_TTL", 10 * 60))

    @property
    def max_attempts(self) -> int:
        return int(self.options.get("max_attempts") or setting("CODE_MAX_ATTEMPTS", 5))

    @property
    def cooldown(self) -> int:
        return int(self.options.get("cooldown") or setting("CODE_COOLDOWN", 60))

    @property
    def daily_limit(self) -> int:
        return int(self.options.get("daily_limit") or setting("CODE_DAILY_LIMIT", 10))

    # -- what the base does ----------------------------------------------------------------------
    def send_code(self, data: dict[str, Any]) -> SentCode:
        """Make, store and deliver a code for the address in ``data``; ``too_many_requests`` with
        ``retry_after`` during the cool-down or past the daily limit of that address."""
        if not self.authenticator.enabled:
            raise AuthError("disabled")
        destination = self.destination(data)
        code_id, code = secrets.token_urlsafe(24), f"{secrets.randbelow(10**6):06d}"
        user = self.user_for(destination)
        self._store_code(destination, code_id, code, account=user)
        self.code_id = code_id
        self.recipient = user  # for the engine's audit log only: never in the answer
        try:
            if user is not None or self.purpose == "sign_up":
                self.deliver(destination, code, user=user, timeout=self.code_ttl)
                metrics.code_sent(self.channel)
            else:
                self.deliver_unknown(destination, timeout=self.code_ttl)
        except AuthError:
            self._forget_code(code_id)  # nothing was sent: it counts for no cool-down
            raise
        return SentCode(code_id=code_id, timeout=self.code_ttl, resend_after=self.cooldown)

    def _store_code(self, destination: str, code_id: str, code: str, *, account: Any = None) -> None:
        """Store the code unless the address is in its cool-down or past its daily limit, or the
        ``account`` it signs in to was sent a code (by any authenticator, to any of its addresses)
        within the cool-down. The authenticator's row (and the account's) is locked meanwhile, so
        parallel sends cannot all pass."""
        from authenticators.models import Authenticator, OneTimeCode

        retry_after = 0
        with transaction.atomic():
            Authenticator.objects.select_for_update().filter(pk=self.authenticator.pk).first()
            if account is not None:
                type(account)._default_manager.select_for_update().filter(pk=account.pk).first()
            now = timezone.now()
            recent = OneTimeCode.objects.filter(authenticator=self.authenticator, destination=destination,
                                                created_at__gt=now - timedelta(days=1))
            sent = [recent.order_by("-created_at").values_list("created_at", flat=True).first()]
            if account is not None:
                sent.append(OneTimeCode.objects.filter(account=account).order_by("-created_at")
                            .values_list("created_at", flat=True).first())
            last = max((at for at in sent if at is not None), default=None)
            if last is not None and self.cooldown - (now - last).total_seconds() > 0:
                retry_after = max(1, int(self.cooldown - (now - last).total_seconds()))
            elif recent.count() >= self.daily_limit:
                retry_after = 24 * 3600
            else:
                OneTimeCode.objects.create(
                    code_id=code_id, authenticator=self.authenticator, destination=destination,
                    purpose=self.purpose, binding=self.binding, digest=code_digest(code_id, code),
                    created_at=now, expires_at=now + timedelta(seconds=self.code_ttl),
                    account=account if account is not None and getattr(account, "pk", None) else None,
                )
        if retry_after:
            raise AuthError("too_many_requests", retry_after=retry_after)

    @staticmethod
    def _forget_code(code_id: str) -> None:
        from authenticators.models import OneTimeCode

        OneTimeCode.objects.filter(code_id=code_id).delete()

    def check_code(self, code_id: str, code: str) -> str:
        """The destination the code was sent to, once the code checks out; the code is then spent.

        Under a row lock, so that of any number of parallel checks of one code exactly one wins,
        and wrong guesses are counted exactly: the fifth spends the code.
        """
        from authenticators.models import OneTimeCode

        if not isinstance(code_id, str) or not isinstance(code, str) or not code_id or len(code_id) > 64:
            raise AuthError("invalid_code")
        failure = ""
        with transaction.atomic():  # the outcome is decided and written here, raised after COMMIT
            row = (OneTimeCode.objects.select_for_update()
                   .filter(code_id=code_id, authenticator=self.authenticator, binding=self.binding).first())
            if row is None or row.consumed_at is not None:
                failure = "invalid_code"
            elif row.expires_at <= timezone.now():
                failure = "code_expired"
            elif row.attempts >= self.max_attempts:
                failure = "attempts_exceeded"
            elif not hmac.compare_digest(row.digest, code_digest(code_id, code.strip())):
                OneTimeCode.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
                failure = "attempts_exceeded" if row.attempts + 1 >= self.max_attempts else "invalid_code"
            else:
                OneTimeCode.objects.filter(pk=row.pk).update(consumed_at=timezone.now())
        if failure or row is None:
            raise AuthError(failure or "invalid_code")
        return row.destination

    def validate(self, data: dict[str, Any]) -> Any:
        destination = self.check_code(str(data.get("code_id") or ""), str(data.get("code") or ""))
        user = self.user_for(destination)
        if user is None:
            raise AuthError("invalid_code")  # the same answer as a wrong code: no account is revealed
        return user


# -- upstream redirects --------------------------------------------------------------------------------
class RedirectAuth(BaseAuth):
    """A type that sends the browser upstream and is called back (upstream OpenID Connect, OAuth).

    The base makes the ``state`` (and a ``nonce`` and PKCE verifier a type may use), checks on the
    way back that the state is the one it made, unused and fresh; the caller keeps ``pending``
    (JSON) between the two legs (the interaction, or a short-lived exchange record).
    """

    kind = "redirect"
    pending_ttl: ClassVar[int] = 10 * 60

    @abstractmethod
    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str,
                      login_hint: str = "") -> str:
        """The upstream authorization URL (``login_hint``: the e-mail the user gave, when known)."""

    @abstractmethod
    def complete(self, params: dict[str, Any], pending: dict[str, Any]) -> Any:
        """Finish with the callback's parameters (``code``, ...); return the user or raise."""

    def callback_path(self) -> str:
        """This authenticator's redirect URI on this site (``/auth/<name>/callback``), to register
        upstream; faces make it absolute with the issuer."""
        from django.urls import reverse

        return reverse("experience:auth-callback", kwargs={"name": self.authenticator.name})

    def redirect_uri(self, request: HttpRequest | None = None) -> str:
        """The absolute redirect URI, registered upstream and sent with each authorization request:
        the issuer (where the apps are mounted, or ``PORTCULLIS_ISSUER``) and :meth:`callback_path`
        below that mount point, as discovery makes its endpoints."""
        from identity.app_settings import app_settings, mount_path

        callback, mount = self.callback_path(), mount_path()
        if mount and (callback == mount or callback.startswith(mount + "/")):
            callback = callback[len(mount):]
        return app_settings.issuer(request) + callback

    def test_connection(self) -> list[tuple[bool, str]]:
        """What the admin's "test connection" shows: each check (discovery reachable, keys valid,
        issuer matches, ...) with whether it passed. A type with nothing to check answers []."""
        return []

    def begin(self, redirect_uri: str, *, login_hint: str = "") -> tuple[str, dict[str, Any]]:
        """The URL to send the browser to, and the pending state to keep until the callback."""
        if not self.authenticator.enabled:
            raise AuthError("disabled")
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        pending: dict[str, Any] = {"state": state, "nonce": nonce, "code_verifier": verifier,
                                   "redirect_uri": redirect_uri, "authenticator": self.authenticator.name,
                                   "at": int(timezone.now().timestamp())}
        url = self.authorize_url(redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=verifier,
                                 login_hint=login_hint)
        return url, pending

    def domains(self) -> list[str]:
        """The e-mail domains routed to this authenticator (enterprise SSO): the ``domains`` option,
        lower-cased. Password and code sign-in for an e-mail in one of them are refused (``sso``)."""
        value = self.options.get("domains") or []
        return [str(d).strip().lower().lstrip("@") for d in value if str(d).strip()] if isinstance(value, list) else []

    def finish(self, params: dict[str, Any], pending: dict[str, Any] | None) -> Any:
        """Check the callback against ``pending`` (which the caller then discards), then complete."""
        state = params.get("state")
        if (not pending or pending.get("authenticator") != self.authenticator.name or not isinstance(state, str)
                or not hmac.compare_digest(str(pending.get("state", "")), state)):
            raise AuthError("invalid_state")
        if int(timezone.now().timestamp()) - int(pending.get("at", 0)) > self.pending_ttl:
            raise AuthError("invalid_state")
        return self.sign_in({"params": params, "pending": pending})

    def validate(self, data: dict[str, Any]) -> Any:
        return self.complete(data["params"], data["pending"])


# -- second factors -------------------------------------------------------------------------------------
class SecondFactorAuth(BaseAuth):
    """A factor checked after the user is identified (TOTP, backup codes, a code by e-mail)."""

    kind = "second_factor"
    # True for a factor offered only beside others (the e-mail code): the engine then asks
    # enrolled_beside() once it knows which of the other factors the user has.
    beside_others: bool = False
    # True when enrolment(user) depends on user.pk alone (not on the authenticator's options, nor on
    # the user's other fields): the engine then compiles the enrolment statement once per process
    # instead of on every sign-in (TOTP's and backup codes' do).
    enrolment_by_pk: ClassVar[bool] = False

    def enrolment(self, user: Any) -> QuerySet[Any] | None:
        """The rows whose existence means ``user`` has this factor set up (a TOTP device, an unused
        backup code), so that the engine asks every factor in one statement
        (:func:`enrolled_each`); None for a factor that answers in :meth:`enrolled` only."""
        return None

    @classmethod
    def enrolment_by(cls, user_pk: Any) -> QuerySet[Any] | None:
        """For a factor that sets ``enrolment_by_pk``: :meth:`enrolment` of the account whose primary
        key is ``user_pk``, a value or an expression. With ``OuterRef("user_id")`` the sign-in's
        look-up of the account answers it in the same statement
        (``identity.identifiers.ask_with_account``, :func:`enrolment_facts`), and the engine asks
        no statement of its own for it. None (the default): asked apart, as :meth:`enrolment` says."""
        return None

    def enrolled(self, user: Any) -> bool:
        """Whether ``user`` has this factor set up (by default: whether :meth:`enrolment` finds a row)."""
        rows = self.enrolment(user)
        if rows is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither enrolment() nor enrolled()")
        return rows.exists()

    def enrolled_beside(self, user: Any, others: list[Any]) -> bool:
        """:meth:`enrolled`, when ``others`` (authenticators) are the factors the user is known to be
        enrolled in: a factor that depends on them answers without looking them up again."""
        return self.enrolled(user)

    @abstractmethod
    def verify_for(self, user: Any, data: dict[str, Any]) -> None:
        """Check ``data`` against ``user``'s factor; raise ``AuthError`` when it does not hold."""

    def validate(self, data: dict[str, Any]) -> Any:
        raise AuthError("disabled")  # a second factor never identifies a user on its own

    def verify(self, user: Any, data: dict[str, Any]) -> Any:
        """What the engine calls: refuses a disabled authenticator, then :meth:`verify_for`."""
        if not self.authenticator.enabled:
            raise AuthError("disabled")
        if not self.enrolled(user):
            raise AuthError("invalid_code")
        self.verify_for(user, data)
        self.user = user
        return user


def enrolled_each(user: Any, auths: list[SecondFactorAuth]) -> list[bool]:
    """Whether ``user`` has each of ``auths`` set up, in order: the factors with an
    :meth:`~SecondFactorAuth.enrolment` are asked in one statement (an ``EXISTS`` each on the
    user's row; compiled once when they all set ``enrolment_by_pk``), the others through
    :meth:`~SecondFactorAuth.enrolled`."""
    asked: dict[int, bool] = {}
    by_pk = [index for index, auth in enumerate(auths) if auth.enrolment_by_pk]
    facts = facts_of(user)  # answered by the sign-in's look-up of the account, in this request
    if by_pk and facts and all(_fact_name(type(auths[index])) in facts for index in by_pk):
        asked = {index: bool(facts[_fact_name(type(auths[index]))]) for index in by_pk}
        by_pk = []
    rows = {index: found for index, auth in enumerate(auths)
            if not auth.enrolment_by_pk and (found := auth.enrolment(user)) is not None}
    prepared = _enrolment_statement([auths[index] for index in by_pk]) if by_pk and not rows else None
    if prepared is not None and isinstance(user.pk, int):
        answer = prepared.values(user.pk, db=router.db_for_read(type(user)))
        asked = {index: bool(answer and answer[at]) for at, index in enumerate(by_pk)}
    else:
        rows.update((index, found) for index in by_pk if (found := auths[index].enrolment(user)) is not None)
        if len(rows) == 1:
            ((index, found),) = rows.items()
            asked[index] = found.exists()
        elif rows:
            answer = next(iter(_enrolment_queryset(type(user), user.pk, list(rows.values()))), None)
            asked = {index: bool(answer and answer[at]) for at, index in enumerate(rows)}
    return [asked[index] if index in asked else auth.enrolled(user) for index, auth in enumerate(auths)]


def enrolment_facts() -> dict[str, Any]:
    """What ``identity.identifiers.find_user`` answers of the account it finds, for
    :func:`enrolled_each`: whether it has each registered ``enrolment_by_pk`` factor
    (:meth:`SecondFactorAuth.enrolment_by`), an ``EXISTS`` each (registered by
    ``AuthenticatorsConfig.ready()``)."""
    from authenticators.registry import registry

    facts: dict[str, Any] = {}
    for auth_type in registry:
        auth_class = auth_type.auth_class
        if issubclass(auth_class, SecondFactorAuth) and auth_class.enrolment_by_pk:
            rows = auth_class.enrolment_by(OuterRef("user_id"))
            if rows is not None:
                facts[_fact_name(auth_class)] = Exists(rows)
    return facts


def _fact_name(auth_class: type) -> str:
    return f"enrolled:{auth_class.__module__}.{auth_class.__qualname__}"


def _enrolment_queryset(user_model: Any, pk: Any, found: list[QuerySet[Any]]) -> QuerySet[Any]:
    """``SELECT EXISTS(..), EXISTS(..) FROM <users> WHERE pk = ..``: one answer per queryset."""
    return (user_model._default_manager.filter(pk=pk).order_by()
            .annotate(**{f"enrolled_{at}": Exists(rows) for at, rows in enumerate(found)})
            .values_list(*(f"enrolled_{at}" for at in range(len(found))))[:1])


# Two user ids no account is expected to have, inside every integer column's range: the statement is
# built with each, and compiled once only when they show up in the same places (nothing else of the
# statement depends on the id).
_PK_PLACEHOLDERS = (2_147_480_123, 2_147_480_457)
_ENROLMENT_STATEMENTS: dict[tuple[type, ...], PreparedQuery | None] = {}


def _enrolment_statement(auths: list[SecondFactorAuth]) -> PreparedQuery | None:
    """The compiled enrolment statement of these factors (each ``enrolment_by_pk``, so one per list
    of their classes), or None when the user model's key is not an integer or the statement depends
    on more than the id."""
    kinds = tuple(type(auth) for auth in auths)
    if kinds in _ENROLMENT_STATEMENTS:
        return _ENROLMENT_STATEMENTS[kinds]
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    statement = None
    if isinstance(user_model._meta.pk, IntegerField):
        detached = [type(auth)(auth.authenticator) for auth in auths]  # kept without this request

        def build(pk: int) -> QuerySet[Any]:
            stand_in = user_model(pk=pk)
            found = [auth.enrolment(stand_in) for auth in detached]
            return _enrolment_queryset(user_model, pk, [rows for rows in found if rows is not None])

        shapes = []
        for pk in _PK_PLACEHOLDERS:
            sql, params = build(pk).query.sql_with_params()
            shapes.append((sql, [None if param == pk else param for param in params], pk in params))
        if shapes[0] == shapes[1] and shapes[0][2] and shapes[0][0].count("EXISTS") == len(auths):
            statement = PreparedQuery(build, (_PK_PLACEHOLDERS[0],))
    _ENROLMENT_STATEMENTS[kinds] = statement
    return statement
