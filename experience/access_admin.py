"""The access rules' simulator in admin: given an application (or none: the default experience), an
e-mail address, an IP address and a region, which rule decides and why, and the effective rules
with where each list comes from. It asks ``experience.access_control.evaluate``, the function the
sign-in and the token endpoint ask, so what it says is what they do. Staff with permission to view
the sign-in experience only; it changes nothing and records nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import get_application_model

from experience.access import region_problem
from experience.access_control import SIMULATE, AccessCheck, evaluate
from experience.models import Experience
from experience.policy import effective, resolve

URL_NAME = "experience_experience_simulate"  # admin:experience_experience_simulate


class SimulatorForm(forms.Form):
    application = forms.ModelChoiceField(
        label=_("application"), queryset=get_application_model().objects.order_by("name"), required=False,
        empty_label=_("(none: the default experience)"))
    email = forms.EmailField(label=_("e-mail address"), required=False, max_length=254,
                             help_text=_("Empty: before anyone is identified (IP and region only)."))
    ip = forms.GenericIPAddressField(label=_("IP address"), required=False,
                                     help_text=_("IPv4 or IPv6, as the client IP is read (the trusted proxy header's "
                                                 "last address, else the socket address). Empty: unknown."))
    region = forms.CharField(label=_("region"), required=False, max_length=2,
                             help_text=_("ISO 3166-1 alpha-2, as the region header names it (DE, US). Empty: unknown."))

    def clean_region(self) -> str:
        region = self.cleaned_data["region"].strip().upper()
        problem = region_problem(region) if region else None
        if problem:
            raise forms.ValidationError(problem)
        return region


def simulate(form: SimulatorForm) -> dict[str, Any]:
    """The decision for the form's values, and the effective access rules they were judged by."""
    data = form.cleaned_data
    client_id = data["application"].client_id if data["application"] else ""
    email = data["email"] or None
    user = get_user_model()._default_manager.filter(email__iexact=email).first() if email else None
    check = AccessCheck(client_id=client_id, rules=resolve(client_id).access, stage=SIMULATE, user=user, email=email,
                        ip=data["ip"] or None, region=data["region"] or None)
    rules = [(name.removeprefix("access_rules."), value, source) for name, value, source in effective(client_id)
             if name.startswith("access_rules.")]
    return {"decision": evaluate(check), "rules": rules, "account": user}


def simulator_view(request: HttpRequest) -> HttpResponse:
    if not admin.site.is_registered(Experience) or not request.user.has_perm("experience.view_experience"):
        raise PermissionDenied
    form = SimulatorForm(request.GET or None)
    result = simulate(form) if form.is_bound and form.is_valid() else None
    context = {**admin.site.each_context(request), "opts": Experience._meta, "title": _("Access rule simulator"),
               "form": form, "result": result}
    return render(request, "admin/experience/access_simulator.html", context, status=400 if form.errors else 200)


def with_simulator(get_urls: Callable[[Any], list[URLPattern]]) -> Callable[[Any], list[URLPattern]]:
    """A ModelAdmin's ``get_urls`` with the simulator's URL first (before its ``<object_id>/`` catch-all)."""

    def urls(model_admin: Any) -> list[URLPattern]:
        page = path("simulate/", model_admin.admin_site.admin_view(simulator_view), name=URL_NAME)
        return [page, *get_urls(model_admin)]

    return urls
