"""Risk rules: failed-attempt counters, captcha demands, lockouts and API throttling.

Counters live in the Django cache (Redis when ``REDIS_URL`` is set, else the file cache), which
every worker process shares, so the limits hold across processes. The defaults are SPEC §2's:

- failures are counted per **account** (the comparison key of the identifier typed, so an unknown
  account counts exactly like a known one: no enumeration) and per **IP**, each within
  ``PORTCULLIS_RISK_WINDOW`` seconds (15 minutes) of its first failure;
- with the captcha policy ``risk``, a captcha is demanded from ``PORTCULLIS_CAPTCHA_ACCOUNT_THRESHOLD``
  (3) failures for the account or ``PORTCULLIS_CAPTCHA_IP_THRESHOLD`` (10) from the IP; ``always``
  demands one on every step that names an account; ``off`` never;
- ``PORTCULLIS_LOCKOUT_THRESHOLD`` (10) failures for an account lock it for
  ``PORTCULLIS_LOCKOUT_SECONDS`` (15 minutes): ``429 rate_limited too_many_requests`` with
  ``retry_after``, the same answer whether or not the account exists, and whatever the password
  or captcha (solving a captcha never lifts it);
- the JSON APIs allow ``PORTCULLIS_API_RATE_LIMIT`` (30) requests per ``PORTCULLIS_API_RATE_WINDOW``
  (60) seconds per IP and endpoint (:func:`throttle`).

The engine calls :func:`guard` before a first factor is checked or a code is sent, and
:func:`failed` after each failure (a second factor's failures count for every identifier of the
account). Each guarded attempt past the threshold needs a fresh captcha: a key is single use.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from experience import audit
from experience import captcha as captchas
from experience.errors import EngineError
from experience.models import AuditEvent, Interaction
from experience.policy import policy_for
from identity.app_settings import setting
from identity.identifiers import PHONE, USERNAME, comparison_key, identifiers_of

PREFIX = "portcullis:risk:"
# Failures that are not a guess at a secret: nothing to count.
NOT_COUNTED = frozenset({"invalid_input", "disabled", "too_many_requests", "sso_required", "unknown_authenticator"})


# -- settings ---------------------------------------------------------------------------------------
def window() -> int:
    return int(setting("RISK_WINDOW", 15 * 60))


def captcha_account_threshold() -> int:
    return int(setting("CAPTCHA_ACCOUNT_THRESHOLD", 3))


def captcha_ip_threshold() -> int:
    return int(setting("CAPTCHA_IP_THRESHOLD", 10))


def lockout_threshold() -> int:
    return int(setting("LOCKOUT_THRESHOLD", 10))


def lockout_seconds() -> int:
    return int(setting("LOCKOUT_SECONDS", 15 * 60))


def api_rate_limit() -> int:
    return int(setting("API_RATE_LIMIT", 30))


def api_rate_window() -> int:
    return int(setting("API_RATE_WINDOW", 60))


INTEGER_SETTINGS = ("RISK_WINDOW", "CAPTCHA_ACCOUNT_THRESHOLD", "CAPTCHA_IP_THRESHOLD", "LOCKOUT_THRESHOLD",
                    "LOCKOUT_SECONDS", "API_RATE_LIMIT", "API_RATE_WINDOW", "CAPTCHA_TIMEOUT")


# -- keys and counters --------------------------------------------------------------------------------
def _digest(value: str) -> str:
    """Cache keys never hold an identifier or an address in clear."""
    return salted_hmac("portcullis.risk", value).hexdigest()[:40]


def account_key(identifier: str) -> str:
    """One key per identifier as a person means it (``Alice`` = ``alice``; a phone's separators)."""
    kind = PHONE if identifier.strip().startswith("+") else USERNAME  # e-mail and username fold alike
    return _digest("account:" + comparison_key(kind, identifier))


def ip_key(request: HttpRequest) -> str:
    return _digest("ip:" + (audit.client_ip(request) or "unknown"))


def _read_ahead(keys: list[str]) -> dict[str, Any]:
    """These cache keys' values (None when absent), read in one round trip (``MGET`` on Redis)."""
    found = cache.get_many(keys) if keys else {}
    return {key: found.get(key) for key in keys}


def _get(key: str, known: dict[str, Any] | None) -> Any:
    """``key``'s value: from ``known`` (a :func:`_read_ahead`) when it was read there, else from the cache."""
    return known[key] if known is not None and key in known else cache.get(key)


def _count(key: str, known: dict[str, Any] | None = None) -> int:
    value = _get(PREFIX + "fail:" + key, known)
    return int(value) if isinstance(value, int) else 0


def _increment(key: str, timeout: int) -> int:
    """Add one to a counter that lives ``timeout`` seconds from its first increment (atomic on
    Redis; the file cache's read-modify-write may lose a count under a race, never add one)."""
    full = PREFIX + key
    cache.add(full, 0, timeout)
    try:
        return int(cache.incr(full))
    except ValueError:  # expired between add and incr
        cache.add(full, 1, timeout)
        return 1


def _locked_for(key: str, known: dict[str, Any] | None = None) -> int:
    """Seconds the account key stays locked (0: not locked)."""
    until = _get(PREFIX + "lock:" + key, known)
    if not isinstance(until, (int, float)):
        return 0
    return max(0, math.ceil(until - time.time()))


def account_keys(identifier: str = "", user: Any = None) -> list[str]:
    keys = {account_key(value) for value in identifiers_of(user).values()} if user is not None else set()
    if identifier.strip():
        keys.add(account_key(identifier))
    return sorted(keys)


# -- what the engine calls -------------------------------------------------------------------------------
def check_lockout(request: HttpRequest, identifier: str = "", user: Any = None, known: dict[str, Any] | None = None) -> None:
    """Raise ``too_many_requests`` while the account (any of its identifiers) is locked."""
    wait = max((_locked_for(key, known) for key in account_keys(identifier, user)), default=0)
    if wait:
        raise EngineError("too_many_requests", retry_after=wait)


def captcha_needed(request: HttpRequest, interaction: Interaction, identifier: str = "",
                   known: dict[str, Any] | None = None) -> bool:
    """Whether a step naming ``identifier`` must carry a solved captcha now."""
    policy = policy_for(interaction.client_id, request).captcha
    if policy == "always":
        return True
    if policy != "risk":
        return False
    if identifier.strip() and _count("account:" + account_key(identifier), known) >= captcha_account_threshold():
        return True
    return _count("ip:" + ip_key(request), known) >= captcha_ip_threshold()


def guard(request: HttpRequest, interaction: Interaction, identifier: str, data: dict[str, Any] | None = None) -> None:
    """Before a first factor is checked or a code is sent: refuse a locked account, demand and
    consume a captcha when the rules say so (recording ``state["captcha"]`` for the CaptchaGate).

    Steps that name no account (a code's check, a redirect's callback) are only refused while an
    account they name is locked; a code's own attempts bound them.

    The lock and both counters are read in one round trip."""
    keys = [PREFIX + "lock:" + key for key in account_keys(identifier)]
    if identifier.strip():
        keys += [PREFIX + "fail:account:" + account_key(identifier), PREFIX + "fail:ip:" + ip_key(request)]
    known = _read_ahead(keys)
    check_lockout(request, identifier, known=known)
    if not identifier.strip():
        return
    state = interaction.state
    if not captcha_needed(request, interaction, identifier, known):
        captcha = state.get("captcha") or {}
        if captcha.get("required") and not captcha.get("passed"):
            # demanded for another account (a typo) whose counters this one does not share
            state["captcha"] = {"required": False, "passed": False}
        return
    if not captchas.installed():  # fail closed: the rules demand what this project cannot show
        raise EngineError("too_many_requests", retry_after=window())
    answer = (data or {}).get("captcha")
    given = isinstance(answer, dict) and bool(answer.get("id"))
    passed = isinstance(answer, dict) and given and captchas.solve(answer.get("id"), answer.get("answer"))
    state["captcha"] = {"required": True, "passed": passed}
    if not passed:
        interaction.save(update_fields=["state"])
        raise EngineError("captcha_wrong" if given else "captcha_missing", captcha=captchas.new_challenge(request))


def failed(request: HttpRequest, identifier: str = "", interaction: Interaction | None = None, *,
           user: Any = None, client_id: str = "") -> None:
    """Count a failed attempt for the account (``identifier``, or every identifier of ``user``) and
    the IP; lock the account at the threshold (audited once). With ``interaction``, a captcha is
    marked required in its state as soon as the next attempt will need one (the page shows it)."""
    _increment("fail:ip:" + ip_key(request), window())
    locked = False
    for key in account_keys(identifier, user):
        count = _increment("fail:account:" + key, window())
        if count >= lockout_threshold():
            locked = lock(request, key, identifier or (user.get_username() if user is not None else ""),
                          client_id or (interaction.client_id if interaction else "")) or locked
    if locked:
        suspicious(request, identifier, user)
    if interaction is not None and identifier.strip() and captcha_needed(request, interaction, identifier):
        captcha = interaction.state.get("captcha") or {}
        if not captcha.get("required") or captcha.get("passed"):
            interaction.state["captcha"] = {"required": True, "passed": False}
            interaction.save(update_fields=["state"])


def lock(request: HttpRequest, key: str, identifier: str, client_id: str) -> bool:
    """Lock the account key (once: a second failure does not extend it) and audit the lockout.
    Answers whether this call locked it."""
    seconds = lockout_seconds()
    if cache.add(PREFIX + "lock:" + key, time.time() + seconds, seconds):
        audit.record(request, AuditEvent.LOCKED_OUT, identifier=identifier, client_id=client_id,
                     reason="too_many_failures")
        return True
    return False


def suspicious(request: HttpRequest, identifier: str, user: Any = None) -> None:
    """An account was just locked: tell its owner by e-mail (SECURITY.md: users are notified of a
    suspicious attempt). An identifier without an account tells nobody."""
    from experience import notifications
    from identity.identifiers import AmbiguousIdentifier, find_user

    if user is None and identifier.strip():
        try:
            user = find_user(identifier)
        except AmbiguousIdentifier:
            user = None
    if user is not None:
        notifications.suspicious_attempt(request, user)


def throttle(request: HttpRequest, scope: str) -> None:
    """The JSON APIs' limit: ``api_rate_limit()`` requests per window per IP and endpoint
    (``scope``), else ``too_many_requests`` with ``retry_after`` (the window's remaining seconds)."""
    period = api_rate_window()
    slot = int(time.time() // period)
    count = _increment(f"throttle:{_digest(scope)}:{ip_key(request)}:{slot}", period + 1)
    if count > api_rate_limit():
        raise EngineError("too_many_requests", retry_after=max(1, math.ceil((slot + 1) * period - time.time())))


def should_show_captcha(request: HttpRequest, interaction: Interaction) -> bool:
    """Whether a sign-in page should show a captcha before the user types (the identifier is not
    known yet): always-policy, a demand recorded in the interaction, or an IP past its threshold."""
    policy = policy_for(interaction.client_id, request).captcha
    if policy == "off" or not captchas.installed():
        return False
    captcha = interaction.state.get("captcha") or {}
    if policy == "always" or (captcha.get("required") and not captcha.get("passed")):
        return True
    return captcha_needed(request, interaction)
