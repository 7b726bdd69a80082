"""Request bodies of the JSON faces: JSON only, an object, bounded in size and depth."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import BaseRenderer

from experience.app_settings import app_settings


class BodyError(ParseError):
    """A body the API does not read; ``code`` is the engine's error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code=code)
        self.engine_code = code


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser reads the raw stream without Django's size limit: this one reads at most
    ``PORTCULLIS_API_MAX_BODY`` bytes, refuses deep nesting and strings that cannot be stored
    (lone surrogates), and answers ParseError for all of it (never a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = app_settings.API_MAX_BODY
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if str(length).isdigit() and int(length) > limit:
            raise BodyError("body_too_large")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyError("body_too_large")
        charset = ((parser_context or {}).get("encoding") or "utf-8")
        try:
            data = json.loads(raw.decode(charset), parse_constant=_refuse_constant)
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be stored
        except (ValueError, RecursionError, UnicodeError, LookupError):
            raise BodyError("malformed_body") from None
        return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class JSONOnly(BaseContentNegotiation):
    """Answers are JSON whatever ``Accept`` says (no 406)."""

    def select_parser(self, request: Any, parsers: Iterable[BaseParser]) -> Any:
        content_type = request.content_type.split(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        return None

    def select_renderer(self, request: Any, renderers: Iterable[BaseRenderer], format_suffix: str | None = None) -> Any:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type
