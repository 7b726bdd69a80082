"""OpenID provider endpoints. Thin: oauthlib and the validator do the protocol, these views decide
who is signed in, whether consent is needed, and how errors reach the browser."""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus, urlencode

from django.core.exceptions import (
    ValidationError,
)
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, QueryDict
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.encoding import escape_uri_path
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider import views as dot_views
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.oauth2_backends import OAuthLibCore, _add_iss_to_redirect
from oauth2_provider.oauth2_validators import is_valid_resource_uri
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.openid.connect.core import exceptions as oidc_errors

from identity import authentication, cors, discovery, end_session, keys, languages, parameters, tokens
from identity.app_settings import app_settings
from identity.applications import load_application
from identity.authentication import RESUME_PARAM, RESUME_SESSION_KEY, mark_resume, resume_url
from identity.middleware import UNREADABLE, unavailable_page
from identity.models import ApplicationSettings, Consent, ConsentRequest
from identity.pages import error_page, render_page
from identity.security import client_targets, deny_framing
from identity.transport import no_query_parameters, no_token_in_query, oauth_error
from identity.validators import preloaded_application, redirect_uri_registered, token_request
from identity.views_base import HeadFromGet, View


def readable_body(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A body Django cannot parse (bad multipart, too many fields) is an OAuth invalid_request."""

    @functools.wraps(view)
    def wrapper(self: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            request.POST  # noqa: B018  parse now, inside the try
        except UNREADABLE:
            return oauth_error("invalid_request", "The request body cannot be read.")
        return view(self, request, *args, **kwargs)

    return wrapper


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def json_content_type(response: HttpResponse) -> HttpResponse:
    """DOT answers some OAuth errors with a JSON body labelled text/html: label it JSON."""
    if response.content[:1] == b"{" and not response.get("Content-Type", "").startswith("application/json"):
        response["Content-Type"] = "application/json"
    return response


KEPT_QUERY = "_portcullis_kept_query"  # on the HttpRequest: what AuthorizationView kept, URL-encoded
_EXTRACTED = "_portcullis_oauthlib_params"


class AuthorizationCore(OAuthLibCore):
    """DOT's bridge to oauthlib, for the authorization endpoint: oauthlib is given the parameters
    the view kept (:func:`identity.parameters.bounded`) as one URL-encoded body, which it decodes
    once, whether they came in the query (GET) or the form (POST), and the path alone as the URI;
    the request's headers are copied once, though the view asks twice (to validate, then to issue
    the code). DOT's own bridge hands oauthlib the full URL, whose query oauthlib parses again each
    time it looks for a repeated parameter (five times per validation). Without the view's kept
    parameters it is DOT's bridge."""

    def _extract_params(self, request: HttpRequest) -> tuple[str, str, str, dict[str, Any]]:
        extracted = getattr(request, _EXTRACTED, None)
        if extracted is None:
            query = getattr(request, KEPT_QUERY, None)
            if query is None:
                return super()._extract_params(request)
            extracted = (escape_uri_path(request.path), request.method or "GET", query, self.extract_headers(request))
            setattr(request, _EXTRACTED, extracted)
        return extracted


@method_decorator([csrf_exempt, never_cache], name="dispatch")
class AuthorizationView(OAuthLibMixin, View):
    """The authorization endpoint (GET or POST), ``response_type=code`` only."""

    oauthlib_backend_class = AuthorizationCore

    # No HEAD: Django would answer it with the GET handler, which signs in, stores and issues codes.
    http_method_names = ["get", "post", "options"]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        view.temporarily_unavailable = cls.temporarily_unavailable  # type: ignore[attr-defined]  # identity.middleware's hook
        return view

    @classmethod
    def temporarily_unavailable(cls, request: HttpRequest, part: str, retry_after: int) -> HttpResponseBase:
        """Redis or PostgreSQL away (RFC 6749 4.1.2.1): ``temporarily_unavailable`` back to the client
        when the database still says which application asks and that its redirect URI is registered;
        else the plain 503 page (never a redirect to an unchecked URI)."""
        params = request.POST if request.method == "POST" else request.GET
        redirect_uri = params.get("redirect_uri", "")
        if part == "database" or not redirect_uri:
            return unavailable_page()
        try:
            application = load_application(params.get("client_id", ""))
            if application is None or not redirect_uri_registered(application, redirect_uri):
                return unavailable_page()
            # RFC 6749: error_description is ASCII, so English whatever the page's language
            error = oauth_errors.TemporarilyUnavailableError(
                description="The service is temporarily unavailable. Try again in a few seconds.",
                state=params.get("state"))
            error.redirect_uri = redirect_uri
            return cls().redirect_error(request, application, error)
        except Exception:  # noqa: BLE001  already answering an outage: whatever fails here, the page
            return unavailable_page()

    def get(self, request: HttpRequest) -> HttpResponseBase:
        return self.authorize(request, request.GET)

    def post(self, request: HttpRequest) -> HttpResponseBase:
        return self.authorize(request, request.POST)

    def authorize(self, request: HttpRequest, params: QueryDict) -> HttpResponseBase:
        languages.use_ui_locales(request, params.get("ui_locales", ""))  # consent and error pages
        if any("\x00" in value for values in params.lists() for value in values[1]):
            return error_page(request, "invalid_request", _("The request is malformed."))
        if any(len(params.getlist(name)) > 1 for name in SINGLE_VALUED):
            return error_page(request, "invalid_request", _("A parameter was repeated."))
        params, query, refusal = parameters.bounded(params)
        self.expose_only(request, query)
        if refusal is not None and not refusal.trusted:
            return error_page(request, "invalid_request", refusal.description)
        application = load_application(params.get("client_id", ""))
        if application is None:
            return error_page(request, "invalid_client", _("The application is unknown."))
        if refusal is not None:
            return self.redirect_error(request, application, client_error(
                oauth_errors.InvalidRequestError, params, refusal.description))
        with preloaded_application(application):
            try:
                scopes, credentials = self.validate_authorization_request(request)
            except FatalClientError as error:
                return error_page(request, error.oauthlib_error.error, error.oauthlib_error.description or "")
            except OAuthToolkitError as error:
                return self.redirect_error(request, application, error.oauthlib_error)
            return self.decide(request, params, application, scopes, credentials)

    @staticmethod
    def expose_only(request: HttpRequest, query: str) -> None:
        """Let oauthlib (through :class:`AuthorizationCore`) and the rest of the request see the
        kept parameters only (``query``, URL-encoded)."""
        kept = QueryDict(query)  # immutable, as Django's own
        if request.method == "POST":
            request.POST = kept
            request.META["QUERY_STRING"] = ""
        else:
            request.GET = kept
            request.META["QUERY_STRING"] = query
        setattr(request, KEPT_QUERY, query)

    def decide(self, request: HttpRequest, params: QueryDict, application: Any, scopes: list[str], credentials: dict) -> HttpResponseBase:
        prompt = set(params.get("prompt", "").split())
        max_age = parse_max_age(params.get("max_age"))
        problem = request_problem(params, max_age)
        if problem:
            error_class, description = problem
            return self.redirect_error(request, application, client_error(error_class, credentials, description))
        resumed = self.pop_resume(request, params)
        auth = authentication.current(request)
        if auth is None or self.login_needed(params, auth, prompt, max_age, resumed):
            if "none" in prompt:
                return self.redirect_error(request, application, client_error(oidc_errors.LoginRequired, credentials))
            return self.begin_sign_in(request, params, application)
        refusal = self.refusal(request, application)
        if refusal:
            return error_page(request, "access_denied", refusal, status=403)
        if self.consent_needed(request, application, scopes, prompt, resumed):
            if "none" in prompt:
                return self.redirect_error(request, application, client_error(oidc_errors.ConsentRequired, credentials))
            return self.ask_consent(request, params, application, scopes, resumed)
        return self.issue_code(request, application, scopes, credentials, auth)

    # -- decisions -------------------------------------------------------------------------------
    @staticmethod
    def pop_resume(request: HttpRequest, params: QueryDict) -> dict[str, Any]:
        token = params.get(RESUME_PARAM, "")
        markers = request.session.get(RESUME_SESSION_KEY) or {}
        if not token or token not in markers:
            return {}
        marker = markers.pop(token)
        request.session[RESUME_SESSION_KEY] = markers
        if same_params(marker.get("params", ""), authorize_params(params)):
            return marker
        return {}

    @staticmethod
    def refusal(request: HttpRequest, application: Any) -> str | None:
        """Why ``PORTCULLIS_AUTHORIZE_CHECK`` (the experience's access rules) refuses the signed-in
        user this application from this device now (an SSO sign-in to a second application), or None."""
        path = app_settings.AUTHORIZE_CHECK
        return import_string(path)(request, request.user, application) if path else None

    @staticmethod
    def login_needed(params: QueryDict, auth: authentication.Authentication, prompt: set[str],
                     max_age: int | None, resumed: dict[str, Any]) -> bool:
        hint = params.get("id_token_hint")
        if hint and not end_session.is_session_subject(end_session.hinted_subject(hint), auth):
            return True  # a hint for another user (or a token we did not sign)
        if resumed.get("login"):
            return False  # the user signed in for this very request
        if "login" in prompt:
            return True
        return max_age is not None and time.time() - auth.auth_time > max_age

    @staticmethod
    def consent_needed(request: HttpRequest, application: Any, scopes: list[str], prompt: set[str],
                       resumed: dict[str, Any]) -> bool:
        if resumed.get("consent"):
            return False
        if "consent" in prompt:
            return True
        if ApplicationSettings.for_application(application).first_party or application.skip_authorization:
            return False  # first-party (ours) or DOT's own "skip authorization" flag
        consent = Consent.objects.filter(user_id=request.user.pk or 0, application=application).first()
        return consent is None or not consent.covers(scopes)

    # -- outcomes ---------------------------------------------------------------------------------
    def begin_sign_in(self, request: HttpRequest, params: QueryDict, application: Any) -> HttpResponseBase:
        handler = import_string(app_settings.SIGN_IN_HANDLER)
        url = handler(request, authorize_params(params), application, params.get("login_hint", ""))
        return deny_framing(HttpResponse(status=303, headers={"Location": url}))

    def ask_consent(self, request: HttpRequest, params: QueryDict, application: Any, scopes: list[str],
                    resumed: dict[str, Any]) -> HttpResponse:
        key = secrets.token_urlsafe(16)
        auth = authentication.current(request)
        assert auth is not None  # decide() asks for consent only after a sign-in
        ConsentRequest.objects.create(key=key, user_id=auth.user_id, sid=auth.sid, client_id=application.client_id,
                                      params=authorize_params(params), scopes=scopes,
                                      login=bool(resumed.get("login")))
        descriptions = get_scopes_backend().get_all_scopes()
        context = {
            "application": application,
            "scopes": [(scope, descriptions.get(scope, scope)) for scope in scopes],
            "key": key,
        }
        # Allow, and deny too, end in a redirect to the client, which the form's CSP must allow.
        targets = client_targets(application, params.get("redirect_uri", ""))
        return deny_framing(render_page(request, "identity/consent.html", context, application), form_action=targets)

    def issue_code(self, request: HttpRequest, application: Any, scopes: list[str], credentials: dict,
                   auth: authentication.Authentication | None) -> HttpResponseBase:
        credentials["portcullis_auth"] = auth
        try:
            uri, _headers, _body, _status = self.create_authorization_response(
                request=request, scopes=" ".join(scopes), credentials=credentials, allow=True
            )
        except FatalClientError as error:
            return error_page(request, error.oauthlib_error.error, error.oauthlib_error.description or "")
        except OAuthToolkitError as error:
            return self.redirect_error(request, application, error.oauthlib_error)
        except ValidationError:  # a value the grant's fields refuse (DOT validates on save)
            return self.redirect_error(request, application, client_error(
                oauth_errors.InvalidRequestError, credentials, "A parameter has an invalid value."))
        # RFC 9207: our issuer, which follows PORTCULLIS_ISSUER as discovery does.
        return self.client_redirect(request, application, with_issuer(uri, app_settings.issuer(request)))

    def redirect_error(self, request: HttpRequest, application: Any, error: oauth_errors.OAuth2Error) -> HttpResponseBase:
        redirect_uri = error.redirect_uri
        if not redirect_uri or not redirect_uri_registered(application, redirect_uri):
            return error_page(request, error.error, error.description or "")
        separator = "&" if "?" in redirect_uri else "?"
        uri = _add_iss_to_redirect(redirect_uri + separator + error.urlencoded, app_settings.issuer(request))
        return self.client_redirect(request, application, uri)

    @staticmethod
    def client_redirect(request: HttpRequest, application: Any, uri: str) -> HttpResponseBase:
        response = OAuth2ResponseRedirect(uri, application.get_allowed_schemes())
        if request.method == "POST":
            response.status_code = 303
        return deny_framing(response)


def with_issuer(uri: str, issuer: str) -> str:
    """``uri`` with RFC 9207's ``iss`` set to ``issuer`` (DOT's ``_add_iss_to_redirect``). DOT's
    authorization response already ends with its own ``iss``; when that is ``issuer`` (the usual
    case), the URI is kept as it is instead of being parsed and built again."""
    ending = "iss=" + quote_plus(issuer)
    if "#" not in uri and uri.endswith(("?" + ending, "&" + ending)):
        return uri
    return _add_iss_to_redirect(uri, issuer)


SINGLE_VALUED = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
                 "code_challenge_method", "prompt", "max_age", "response_mode", "id_token_hint", "login_hint")


def parse_max_age(value: str | None) -> int | None:
    """None when absent, the seconds when valid, -1 when malformed (or absurdly long)."""
    if not value:
        return None
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else -1


def request_problem(params: QueryDict, max_age: int | None) -> tuple[type[oauth_errors.OAuth2Error], str] | None:
    """What oauthlib leaves unchecked, as (error, description) for the client; None when fine."""
    if max_age == -1:
        return oauth_errors.InvalidRequestError, "max_age must be a non-negative integer."
    if params.get("response_mode", "query") != "query":
        return oauth_errors.InvalidRequestError, "Only response_mode=query is supported."
    if len(params.get("nonce", "")) > 255:
        return oauth_errors.InvalidRequestError, "nonce is too long (255 characters at most)."
    challenge = params.get("code_challenge")
    if challenge is not None and not re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", challenge):
        return oauth_errors.InvalidRequestError, "code_challenge must be 43 to 128 unreserved characters (RFC 7636)."
    if any(not is_valid_resource_uri(uri) for uri in params.getlist("resource")):
        return oauth_errors.CustomOAuth2Error, "invalid_target"
    return None


def client_error(error_class: type[oauth_errors.OAuth2Error], credentials: Any,
                 description: str | None = None) -> oauth_errors.OAuth2Error:
    """An error for the client, to be sent to the (already validated) redirect_uri."""
    if error_class is oauth_errors.CustomOAuth2Error:  # description carries the error code
        error = error_class(error=description or "invalid_request", state=credentials.get("state"))
    else:
        error = error_class(description=description, state=credentials.get("state"))
    error.redirect_uri = credentials.get("redirect_uri")
    return error


def same_params(first: str, second: str) -> bool:
    return sorted(QueryDict(first).lists()) == sorted(QueryDict(second).lists())


def authorize_params(params: QueryDict) -> str:
    """The authorization request's parameters, without our resume marker, as a query string."""
    copy = params.copy()
    copy.pop(RESUME_PARAM, None)
    copy.pop("csrfmiddlewaretoken", None)
    return copy.urlencode()


@method_decorator([never_cache, sensitive_post_parameters()], name="dispatch")
class ConsentView(View):
    """The answer to the consent page: remember the grant, then resume the authorization request."""

    def post(self, request: HttpRequest) -> HttpResponseBase:
        auth = authentication.current(request)
        # Consumed in the database, not the session: parallel answers each read the session
        # before any of them writes it, and all of them would count.
        entry = ConsentRequest.consume(request.POST.get("key", ""), auth.user_id, auth.sid) if auth else None
        if entry is None:
            return error_page(request, "invalid_request", _("This consent request has expired. Start again from the application."))
        application = load_application(entry.client_id)
        if application is None:
            return error_page(request, "invalid_client", _("The application is unknown."))
        if request.POST.get("decision") != "allow":
            params = QueryDict(entry.params)
            error = client_error(oauth_errors.AccessDeniedError, params)
            return AuthorizationView().redirect_error(request, application, error)
        remember_consent(request.user, application, entry.scopes)
        token = mark_resume(request, entry.params, consent=True, login=entry.login)
        return HttpResponse(status=303, headers={"Location": resume_url(entry.params, token)})


def remember_consent(user: Any, application: Any, scopes: list[str]) -> None:
    """Record the grant, widening a remembered one; two consent pages of one application may be
    answered at once, and neither answer is lost."""
    for _attempt in range(2):
        try:
            with transaction.atomic():
                consent = Consent.objects.select_for_update().filter(user=user, application=application).first()
                if consent is None:
                    Consent.objects.create(user=user, application=application, scopes=" ".join(scopes))
                elif not consent.covers(scopes):
                    consent.scopes = " ".join(sorted(set(consent.scopes.split()) | set(scopes)))
                    consent.save(update_fields=["scopes", "updated_at"])
                return
        except IntegrityError:  # the other answer created it first: widen that one
            continue


@method_decorator([csrf_exempt, cors.public], name="dispatch")
class DiscoveryView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        # Without ISSUER (DEBUG only) the document follows the Host header: no shared cache may keep it.
        cache = {"Cache-Control": "public, max-age=300"} if app_settings.ISSUER else {"Cache-Control": "private, max-age=300", "Vary": "Host"}
        return HttpResponse(discovery.document(app_settings.issuer(request)), content_type="application/json",
                            headers={**cache, "Access-Control-Allow-Origin": "*"})


@method_decorator(cors.public, name="dispatch")
class JwksView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(keys.key_set().jwks_json, content_type="application/json",
                            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})


@method_decorator([csrf_exempt, cors.for_clients(cors.client_of_credentials, "POST")], name="dispatch")
class TokenView(OAuthLibMixin, View):
    """The token endpoint: oauthlib through DOT's core; every answer is uncacheable JSON.

    Unlike DOT's view it does not look the new access token up again to send DOT's
    ``app_authorized`` signal: that lookup was a sixth query on every token request.
    """

    grant_types = ("authorization_code", "refresh_token")

    @method_decorator(sensitive_post_parameters("client_secret", "code", "code_verifier", "refresh_token", "password"))
    @no_query_parameters
    @readable_body
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("grant_type") not in self.grant_types:
            # Before oauthlib runs: its password grant would check the password first (an oracle),
            # and DOT's device-code path fails on missing parameters.
            return oauth_error("unsupported_grant_type", "Only authorization_code and refresh_token are supported.")
        with token_request(request):
            _url, headers, body, status = self.create_token_response(request)
        response = HttpResponse(content=body, status=status)
        for key, value in headers.items():
            response[key] = value
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        if not response.get("Content-Type", "").startswith("application/json"):
            response["Content-Type"] = "application/json"
        return response


@method_decorator(cors.for_clients(cors.client_of_bearer, "GET, POST"), name="dispatch")
class UserInfoView(HeadFromGet, dot_views.UserInfoView):
    @no_token_in_query
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return no_store(json_content_type(super().get(request, *args, **kwargs)))

    @no_token_in_query
    @readable_body
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return no_store(json_content_type(super().post(request, *args, **kwargs)))


@method_decorator(cors.for_clients(cors.client_of_credentials, "POST"), name="dispatch")
class RevokeTokenView(dot_views.RevokeTokenView):
    @no_query_parameters
    @readable_body
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return json_content_type(super().post(request, *args, **kwargs))


@method_decorator([csrf_exempt, cors.for_clients(cors.client_of_credentials, "POST")], name="dispatch")
class IntrospectView(OAuthLibMixin, View):
    """RFC 7662 for authenticated clients: a client learns about its own tokens only."""

    @no_query_parameters
    @readable_body
    def post(self, request: HttpRequest) -> JsonResponse:
        core = self.get_oauthlib_core()
        uri, method, body, headers = core._extract_params(request)
        from oauthlib.common import Request as OauthlibRequest

        oauth_request = OauthlibRequest(uri, method, body, headers)
        validator = core.server.request_validator
        try:
            validator.authenticate_client(oauth_request)  # raises unless the client proves itself
        except oauth_errors.OAuth2Error as error:
            response = oauth_error(error.error, error.description, status=error.status_code)
            for header, value in error.headers.items():
                response[header] = value
            return response
        token = request.POST.get("token")
        if not token:
            return oauth_error("invalid_request", "The token parameter is missing.")
        return JsonResponse(tokens.introspect(token, oauth_request.client, app_settings.issuer(request)),
                            headers={"Cache-Control": "no-store"})



@method_decorator(never_cache, name="dispatch")
class ConnectedAppsView(View):
    """The user's remembered consents, each revocable: revoking also ends the app's tokens."""

    def get(self, request: HttpRequest) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return sign_in_first(request)
        consents = Consent.objects.filter(user=request.user).select_related("application").order_by("-updated_at")
        return deny_framing(render_page(request, "identity/connected_apps.html", {"consents": consents}))

    def post(self, request: HttpRequest) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return sign_in_first(request)
        chosen = request.POST.get("consent", "")
        consent = Consent.objects.filter(user=request.user, pk=int(chosen)).first() if chosen.isdigit() and len(chosen) < 19 else None
        if consent is not None:
            tokens.revoke_user_tokens(request.user, application=consent.application)
            consent.delete()
        return deny_framing(HttpResponse(status=303, headers={"Location": reverse("identity:connected-apps")}))


def sign_in_first(request: HttpRequest) -> HttpResponse:
    target = f"{reverse('experience:sign-in-start')}?{urlencode({'next': request.get_full_path()})}"
    return deny_framing(HttpResponse(status=302, headers={"Location": target}))
