"""Which parameters of an authorization request the provider keeps, and how long each may be.

What the authorization endpoint keeps is stored (the interaction, the resume marker, the pending
consent) and sent back in a ``Location``, so an anonymous request must not be able to make it store
megabytes. The endpoint keeps the parameters below and drops every other one silently (unknown
parameters never cause an error: SECURITY.md); each kept value has a maximum length, and all of them
together at most :data:`TOTAL_LIMIT` characters once URL-encoded, which also keeps the resumed
``GET /oauth/authorize?…`` within the 8 KB request line of common proxies.

What a value longer than its limit does depends on the parameter:

- ``client_id``, ``redirect_uri``, ``state``: an error page. They decide where an answer would go
  and what it carries; a ``state`` cut short would not be the one the client sent.
- the other protocol parameters: ``invalid_request`` sent to the client's redirect URI.
- the hints (``login_hint``, ``ui_locales``, ``claims_locales``, ``display``, ``acr_values``) and our
  own ``resume`` marker: dropped, as if absent; a hint is advice and must never cause an error.

Not kept (so ignored, as before): ``claims`` and ``request`` / ``request_uri`` / ``registration``
(discovery says none of them is supported) and anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import QueryDict

REFUSE = "refuse"        # invalid_request to the client's redirect URI
UNTRUSTED = "untrusted"  # an error page: the value decides where and what an answer would carry
DROP = "drop"            # treated as absent


@dataclass(frozen=True)
class Limit:
    max_length: int
    too_long: str = REFUSE


LIMITS: dict[str, Limit] = {
    "client_id": Limit(255, UNTRUSTED),
    "redirect_uri": Limit(2000, UNTRUSTED),
    "state": Limit(2048, UNTRUSTED),  # some clients (ASP.NET Core) keep encrypted data in it
    "response_type": Limit(100),
    "response_mode": Limit(32),
    "scope": Limit(2000),
    "nonce": Limit(255),
    "code_challenge": Limit(128),
    "code_challenge_method": Limit(16),
    "prompt": Limit(100),
    "max_age": Limit(20),
    "id_token_hint": Limit(4096),
    "resource": Limit(2000),
    "login_hint": Limit(254, DROP),
    "ui_locales": Limit(255, DROP),
    "claims_locales": Limit(255, DROP),
    "display": Limit(32, DROP),
    "acr_values": Limit(512, DROP),
    "resume": Limit(64, DROP),
}
MULTI_VALUED = {"resource": 10}  # RFC 8707 repeats it; every other parameter keeps its last value
TOTAL_LIMIT = 6144


@dataclass(frozen=True)
class Refusal:
    """Why the request is refused; ``trusted`` when the client's redirect URI may be told."""

    description: str
    trusted: bool


def bounded(params: QueryDict) -> tuple[QueryDict, str, Refusal | None]:
    """The known parameters within their limits, the same URL-encoded (what oauthlib is given), and
    the refusal the request deserves, if any."""
    kept = QueryDict(mutable=True)
    refusals: list[Refusal] = []
    for name, limit in LIMITS.items():
        values = params.getlist(name)
        if len(values) > MULTI_VALUED.get(name, len(values)):
            refusals.append(Refusal(f"{name} is repeated too often ({MULTI_VALUED[name]} values at most).", True))
            continue
        for value in values if name in MULTI_VALUED else values[-1:]:
            if len(value) <= limit.max_length:
                kept.appendlist(name, value)
            elif limit.too_long != DROP:
                refusals.append(Refusal(f"{name} is too long ({limit.max_length} characters at most).",
                                        limit.too_long == REFUSE))
    query = kept.urlencode()
    if not refusals and len(query) > TOTAL_LIMIT:
        refusals.append(Refusal(f"The authorization request is too large ({TOTAL_LIMIT} characters at most).", True))
    refusals.sort(key=lambda refusal: refusal.trusted)  # an untrusted value first: it rules out a redirect
    return kept, query, refusals[0] if refusals else None
