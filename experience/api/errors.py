"""DRF's own failures in SPEC's error shape, through the engine's one table (``experience.errors``):
``{"<kind>": {"code", "message", ...}}``; an engine error is rendered by ``errors.as_json``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponse
from rest_framework import exceptions
from rest_framework.settings import api_settings

from experience import errors
from experience.api.parsers import BodyError
from experience.errors import EngineError


def as_engine_error(exc: BaseException) -> EngineError | None:
    """The engine error a DRF (or Django) exception stands for; None for anything else."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, BodyError):
        return EngineError(exc.engine_code)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return EngineError("unsupported_media_type")
    if isinstance(exc, exceptions.ParseError):
        return EngineError("malformed_body")
    if isinstance(exc, exceptions.ValidationError):
        return EngineError("invalid", fields=field_messages(exc.detail))
    if isinstance(exc, exceptions.MethodNotAllowed):
        return EngineError("method_not_allowed")
    if isinstance(exc, exceptions.Throttled):
        return EngineError("too_many_requests", retry_after=int(getattr(exc, "wait", None) or 1))
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return EngineError("not_found")
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied,
                        DjangoPermissionDenied)):
        return EngineError("forbidden")
    if isinstance(exc, exceptions.APIException):
        return EngineError("malformed_body") if exc.status_code == 400 else None
    return None


def field_messages(detail: Any) -> dict[str, list[str]]:
    """A serializer's errors as ``{"field": ["message", ...]}``, SPEC's shape: a nested object's
    fields are named by their path (``captcha.answer``, ``items.0.name``), the object's own errors by
    its name (``captcha``)."""
    messages: dict[str, list[str]] = {}

    def walk(name: str | None, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                nested = f"{name}.{key}" if key != api_settings.NON_FIELD_ERRORS_KEY else name  # the object itself
                walk(str(key) if name is None else nested, item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, (dict, list)):
                    walk(f"{name}.{index}" if name is not None else str(index), item)
                else:
                    messages.setdefault(name if name is not None else "non_field_errors", []).append(str(item))
        else:
            messages.setdefault(name if name is not None else "non_field_errors", []).append(str(value))

    walk(None, detail)
    return messages


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """REST framework's exception handler for the JSON faces (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``,
    and every Experience API view uses it whatever the project sets)."""
    error = as_engine_error(exc)
    return errors.as_json(error) if error is not None else None
