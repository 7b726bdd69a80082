"""The product's URLs plus /bench/bare, a minimal view that goes through the same middleware: the
reference point for "as fast as Django itself"."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as product_urlpatterns


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("bench/bare", bare), *product_urlpatterns]
