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

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.http import HttpRequest, HttpResponse
from django.middleware import locale
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string
from django.utils.translation.trans_real import parse_accept_lang_header

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
    ``i18n_patterns`` (Portcullis's): the language comes from the cookie and ``Accept-Language``,
    and Django's two searches of the path for a language prefix are skipped. With language
    prefixes in the URLconf it is Django's own."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self.next = get_response  # typed as the sync callable it is (sync_capable only)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        if is_language_prefix_patterns_used(urlconf)[0]:
            return super().__call__(request)  # type: ignore[return-value]
        language = translation.get_language_from_request(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.to_language(language)  # what get_language() answers now
        response = self.next(request)
        if "Vary" in response.headers:
            patch_vary_headers(response, ("Accept-Language",))
        else:  # what patch_vary_headers writes when there is no Vary yet, without parsing one
            response.headers["Vary"] = "Accept-Language"
        response.headers.setdefault("Content-Language", translation.get_language())
        return response
