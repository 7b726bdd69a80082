"""The language of the hosted pages.

In order: the language the user picked with the switcher on every page (Django's language cookie),
then the first supported language of the application's ``ui_locales`` (OpenID Connect Core §3.1.2.1,
RP-Initiated Logout §2) for the pages of that sign-in or sign-out, then the browser's
``Accept-Language`` (Django's ``LocaleMiddleware``), then the language of the application's sign-in
experience (SPEC §5 ``language``, given by the experience's pages), then ``LANGUAGE_CODE``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.http import HttpRequest, HttpResponse
from django.middleware import locale
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string
from django.utils.translation.trans_real import parse_accept_lang_header

from identity import headers

LOCALE_MIDDLEWARE = "django.middleware.locale.LocaleMiddleware"
MAX_TAGS = 10


def supported(tag: str) -> str | None:
    """The supported language for a BCP 47 tag (``ru-RU`` → ``ru``), or None."""
    try:
        return translation.get_supported_language_variant(tag[:35])
    except LookupError:
        return None


def from_ui_locales(ui_locales: str) -> str | None:
    """The first supported language of a space-separated ``ui_locales`` value, or None."""
    for tag in str(ui_locales or "").split()[:MAX_TAGS]:
        language = supported(tag)
        if language is not None:
            return language
    return None


def chosen(request: HttpRequest) -> str | None:
    """The language the user picked with the language switcher, when it is still supported."""
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    return supported(cookie) if cookie else None


def from_browser(request: HttpRequest) -> str | None:
    """The first supported language of the browser's ``Accept-Language``, or None."""
    for tag, _quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")[:1000])[:MAX_TAGS]:
        if tag == "*":
            break
        language = supported(tag)
        if language is not None:
            return language
    return None


def use_ui_locales(request: HttpRequest, ui_locales: str, default: str = "") -> None:
    """Show the rest of this request in the first supported language of ``ui_locales``, unless the
    user picked a language; without one of those, in ``default`` (an experience's language) when
    the browser asks for no language this site has. Only with ``LocaleMiddleware``, which activates
    each request's language afresh (without it the activation would outlive the request in this thread)."""
    if not _activates_per_request(tuple(settings.MIDDLEWARE)) or chosen(request):
        return
    language = from_ui_locales(ui_locales)
    if language is None and default and from_browser(request) is None:
        language = supported(default)
    if language is not None:
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()  # the answer's Content-Language (below)


class _Asked:
    """What ``get_language_from_request`` reads of a request (without a language prefix in the
    path): the language cookie and ``Accept-Language``."""

    __slots__ = ("COOKIES", "META")

    def __init__(self, cookie: str | None, accept: str) -> None:
        self.COOKIES = {} if cookie is None else {settings.LANGUAGE_COOKIE_NAME: cookie}
        self.META = {"HTTP_ACCEPT_LANGUAGE": accept}


def negotiate(cookie: str | None, accept: str) -> tuple[str, str]:
    """Django's language for a language cookie and an ``Accept-Language`` (its
    ``get_language_from_request``, the rule itself), and its ``request.LANGUAGE_CODE``."""
    language = translation.get_language_from_request(cast(HttpRequest, _Asked(cookie, accept)))
    return language, translation.to_language(language)


# Most requests carry one of a few cookie and Accept-Language pairs: each pair's answer is kept
# (the settings it depends on clear it: identity.signals). A long header or cookie is answered
# afresh, so that the cache stays small whatever clients send.
negotiated = functools.lru_cache(maxsize=256)(negotiate)
MAX_CACHED_ACCEPT = 256
MAX_CACHED_COOKIE = 35  # the longest language tag supported() looks at


@functools.lru_cache(maxsize=8)
def _activates_per_request(middleware: tuple[str, ...]) -> bool:
    """Whether ``MIDDLEWARE`` lists Django's ``LocaleMiddleware`` or a subclass (the one below)."""
    for path in middleware:
        try:
            middleware_class = import_string(path)
        except ImportError:
            continue
        if isinstance(middleware_class, type) and issubclass(middleware_class, locale.LocaleMiddleware):
            return True  # (a middleware may be a function, too)
    return False


class LocaleMiddleware(locale.LocaleMiddleware):
    """Django's ``LocaleMiddleware`` with the same answer, cheaper for a URLconf without
    ``i18n_patterns`` (Portcullis's): the language comes from the cookie and ``Accept-Language``
    (Django's rule, its answer kept per pair), Django's two searches of the path for a language
    prefix are skipped, and ``Content-Language`` is ``request.LANGUAGE_CODE``: a view that shows
    another language sets it too (``use_ui_locales`` does). With language prefixes in the URLconf
    it is Django's own."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self.next = get_response  # typed as the sync callable it is (sync_capable only)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        if is_language_prefix_patterns_used(urlconf)[0]:
            return super().__call__(request)  # type: ignore[return-value]
        cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        accept = request.META.get("HTTP_ACCEPT_LANGUAGE", "")
        kept = len(accept) <= MAX_CACHED_ACCEPT and (cookie is None or len(cookie) <= MAX_CACHED_COOKIE)
        language, request.LANGUAGE_CODE = (negotiated if kept else negotiate)(cookie, accept)
        translation.activate(language)
        response = self.next(request)
        if headers.has(response, "Vary"):
            patch_vary_headers(response, ("Accept-Language",))
        else:  # what patch_vary_headers writes when there is no Vary yet, without parsing one
            headers.put(response, "Vary", "Accept-Language")
        if not headers.has(response, "Content-Language"):
            # The request's language, or the one a view switched to with use_ui_locales (which
            # updates request.LANGUAGE_CODE): Django reads get_language() here, a context-local
            # look-up that costs as much as the rest of this middleware.
            headers.put(response, "Content-Language", request.LANGUAGE_CODE)
        return response
