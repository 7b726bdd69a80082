"""The base of the apps' class-based views: Django's ``View``, whose instances do not refer to
themselves.

Django answers HEAD with a view's GET by setting ``self.head = self.get`` on each instance, in
``View.setup()``, when the class has no ``head``. The instance then holds a bound method of itself:
a reference cycle, and the instance holds its request (``self.request``), so every request such a
view served (the view, the request, its session store, its lazy user, about 30 objects) was not
freed with its response but left to the cyclic garbage collector, which then ran every dozen
requests (docs/performance.md, "No reference cycle per request"). Here a class with a ``get`` and
no ``head`` of its own gets ``head`` as a method of the class, which calls ``get`` as Django's
does: the same answers, the same ``Allow`` header, and the instance is freed with its response.
``config.middleware`` does the same for the lazy objects of the middleware.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.views import View as DjangoView


def _head(self: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    response: HttpResponseBase = self.get(request, *args, **kwargs)
    return response


class HeadFromGet:
    """Mixed into a class-based view (Django's ``View``, DRF's ``APIView``, django-oauth-toolkit's
    views): HEAD is ``get``, as a method of the class rather than of each instance."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "get") and getattr(cls, "head", _head) is _head:
            cls.head = _head  # type: ignore[attr-defined]


class View(HeadFromGet, DjangoView):
    """Django's ``View`` with :class:`HeadFromGet`."""
