"""How a finished interaction is completed: a strategy chosen by the face (like allauth's headless
token strategies).

- :class:`BrowserSession` (the hosted pages and the Experience API): the browser session signs in
  (its key rotates) and the answer says where the browser goes next: back to the authorization
  request, or to a safe ``next``.
- :class:`ApplicationToken` (the headless and auth APIs): no browser session; the answer is a
  token response for the application, issued by ``identity.tokens.issue_user_token``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.encoding import iri_to_uri
from django.utils.http import url_has_allowed_host_and_scheme

from experience import notifications
from identity import authentication, tokens

if TYPE_CHECKING:
    from experience.gates import Context


@dataclass(frozen=True)
class Completed:
    """Where the browser goes next (``redirect_to``), or the token response (``token``)."""

    redirect_to: str = ""
    token: dict[str, Any] | None = None


class Completion(Protocol):
    def complete(self, ctx: Context, user: Any, amr: list[str], acr: str) -> Completed:
        """Sign ``user`` in this strategy's way; called once, when every gate is met."""


class BrowserSession:
    def complete(self, ctx: Context, user: Any, amr: list[str], acr: str) -> Completed:
        authentication.sign_in(ctx.request, user, amr, acr)
        # an e-mail when this browser is new to the account, naming the application signed in to
        notifications.new_sign_in(ctx.request, user, ctx.interaction.client_id)
        redirect_to = next_url(ctx)
        authentication.save_session(ctx.request)  # in the sign-in's transaction: one commit
        return Completed(redirect_to=redirect_to)


def next_url(ctx: Context) -> str:
    """Back to the authorization request this interaction serves (marked as signed in for it), or
    the interaction's own safe ``next``."""
    params = ctx.state.get("authorize")
    if params:
        return authentication.resume_url(params, authentication.mark_resume(ctx.request, params, login=True))
    return safe_next(ctx.request, ctx.state.get("next", ""))


def safe_next(request: HttpRequest, next_url: str) -> str:
    """``next`` only when it stays on this site; the default page otherwise (no open redirect).
    Non-ASCII characters are percent-encoded (a header cannot carry them)."""
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                                    require_https=request.is_secure()):
        return iri_to_uri(next_url)
    target = str(settings.LOGIN_REDIRECT_URL)
    return reverse(target) if ":" in target else target


@dataclass(frozen=True)
class ApplicationToken:
    """A token response for ``application`` with ``scopes``. The token family remembers the
    authenticator of the interaction's first factor (``authenticator`` when none names one: a
    sign-up by username and password)."""

    application: Any
    scopes: tuple[str, ...]
    authenticator: str = ""

    def complete(self, ctx: Context, user: Any, amr: list[str], acr: str) -> Completed:
        token = tokens.issue_user_token(ctx.request, self.application, user, self.scopes, amr, acr,
                                        authenticator=self.signed_in_with(ctx))
        return Completed(token=token)

    def signed_in_with(self, ctx: Context) -> str:
        names = [v.get("authenticator") for v in ctx.verifications("first") if v.get("authenticator")]
        return str(names[0]) if names else self.authenticator
