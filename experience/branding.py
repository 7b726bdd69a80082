"""Branding values an admin gives an experience, checked and made safe (SPEC §5 ``branding``).

Everything here is a rule written once: the configuration document (``experience.configuration``),
the admin forms and the pages all use it.

- **Colours** are ``#rgb`` or ``#rrggbb``; the text on a primary-coloured button is black or white,
  whichever contrasts more (WCAG's relative luminance), so a light brand colour keeps legible buttons.
- **Custom CSS** is refused when it holds what could leave its ``<style>`` element or load anything
  (``<``, backslash escapes, ``@import``, ``url(``, ``image-set(``, ``@font-face``, ...), and is cleaned
  again when rendered (:func:`safe_css`), so a value written by other means (a raw SQL update) is
  still harmless. The pages' Content-Security-Policy (``identity.security``) is a third layer.
- **Images** (logo, dark-mode logo, favicon) are uploads of at most :data:`MAX_IMAGE_BYTES`: PNG,
  JPEG, GIF, WebP, ICO by their first bytes (never by the name), or SVG that passes :func:`svg_problem`
  (no script, no event handler, no external reference, no entity declaration). They are stored
  under a random name with the sniffed extension and served by :mod:`experience.branding_views`
  with ``nosniff`` and a sandboxing CSP.
- **Links** (terms, privacy) are ``https://`` URLs or paths on this site.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ElementTree
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email

if TYPE_CHECKING:
    from experience.policy import Policy

MAX_CSS_LENGTH = 20_000
MAX_IMAGE_BYTES = 512 * 1024
MAX_URL_LENGTH = 500
UPLOAD_DIRECTORY = "branding"

COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")

# CSS that reaches outside its element or loads something. Checked on a copy without comments.
_CSS_COMMENT = re.compile(r"/\*.*?(\*/|\Z)", re.DOTALL)
_CSS_LOADS = re.compile(
    r"@(import|font-face|namespace)\b|[a-z-]*(url|image-set|image|src|element|cross-fade|expression)\s*\("
    r"|-moz-binding|behavior\s*:",
    re.IGNORECASE,
)
_CSS_BREAKS = ("<", "\\", "\x00")

IMAGE_TYPES = {  # extension -> content type; what the branding files are served as
    "png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "ico": "image/x-icon", "svg": "image/svg+xml",
}

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
XLINK_NAMESPACE = "http://www.w3.org/1999/xlink"
SVG_ELEMENTS = frozenset({
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "defs", "linearGradient", "radialGradient", "stop", "title", "desc", "clipPath", "mask", "symbol",
    "use", "metadata", "pattern", "filter", "feGaussianBlur", "feOffset", "feBlend", "feColorMatrix",
    "feFlood", "feComposite", "feMerge", "feMergeNode", "feDropShadow",
})


# -- colours ------------------------------------------------------------------------------------------

def colour_problem(value: str) -> str | None:
    if value == "" or COLOUR.match(value):
        return None
    return "must be a colour written #rgb or #rrggbb (e.g. #4f46e5)"


def _rgb(colour: str) -> tuple[float, float, float]:
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def luminance(colour: str) -> float:
    """WCAG 2's relative luminance of ``#rrggbb``."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def on_colour(colour: str) -> str:
    """Black or white text on ``colour``: the one with more contrast."""
    return "#fff" if contrast(colour, "#ffffff") >= contrast(colour, "#000000") else "#000"


# -- custom CSS ---------------------------------------------------------------------------------------

def css_problem(value: str) -> str | None:
    """Why ``value`` may not be custom CSS (None: it may)."""
    if len(value) > MAX_CSS_LENGTH:
        return f"must be at most {MAX_CSS_LENGTH} characters"
    if any(character in value for character in _CSS_BREAKS):
        return "may not contain <, backslashes or NUL (nothing may leave the page's <style> element)"
    match = _CSS_LOADS.search(_CSS_COMMENT.sub(" ", value))
    if match:
        return (f"may not load anything ({match.group(0).strip()}): no @import, @font-face, url(), "
                f"image-set() or similar; upload images as the logo")
    return None


def safe_css(value: str) -> str:
    """``value`` with everything :func:`css_problem` refuses taken out, for rendering inside ``<style>``.
    Repeated until nothing changes, so that a removal cannot join two halves into a new token."""
    text = value[:MAX_CSS_LENGTH]
    while True:
        cleaned = text
        for character in _CSS_BREAKS:
            cleaned = cleaned.replace(character, "")
        cleaned = _CSS_COMMENT.sub(" ", cleaned)
        cleaned = _CSS_LOADS.sub("removed(", cleaned)  # "removed(" is no function a browser loads with
        if cleaned == text:
            return cleaned
        text = cleaned


# -- links and addresses ------------------------------------------------------------------------------

def link_problem(value: str) -> str | None:
    """Why ``value`` is no terms or privacy link: an https URL or a path on this site (empty: none)."""
    if value == "":
        return None
    if len(value) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if not value.isprintable() or any(character.isspace() for character in value) or "\\" in value:
        return "must be an https:// URL or a path on this site, without spaces"
    parts = urlsplit(value)
    if value.startswith("/") and not value.startswith("//") and not parts.netloc:
        return None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return "must be an https:// URL (without user name or password) or a path on this site"
    return None


def email_problem(value: str) -> str | None:
    if value == "":
        return None
    try:
        validate_email(value)
    except ValidationError:
        return "must be an e-mail address"
    return None


# -- images -------------------------------------------------------------------------------------------

def sniff(data: bytes) -> str | None:
    """The image type ``data`` is, by its first bytes (an extension of :data:`IMAGE_TYPES`), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] == b"\x00\x00\x01\x00":
        return "ico"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--")) and b"<svg" in data[:4096].lower():
        return "svg"
    return None


def _local(tag: str) -> tuple[str, str]:
    namespace, _sep, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, name


def svg_problem(data: bytes) -> str | None:
    """Why an SVG may not be a logo (None: it may). Refused rather than rewritten: the admin learns
    what to remove, and what is stored is exactly what was checked."""
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        return "the SVG declares a DOCTYPE or entities: remove them"
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        return f"the SVG is not well-formed XML ({error})"
    if _local(root.tag) != (SVG_NAMESPACE, "svg"):
        return "the file's root element is not an SVG <svg> element"
    for element in root.iter():
        namespace, name = _local(str(element.tag))
        if namespace != SVG_NAMESPACE or name not in SVG_ELEMENTS:
            return f"the SVG holds a <{name}> element, which a logo may not have (scripts, links, " \
                   f"embedded HTML and images are refused)"
        for attribute, value in element.attrib.items():
            attribute_namespace, attribute_name = _local(attribute)
            flat = re.sub(r"\s", "", value).lower()
            if attribute_name.lower().startswith("on"):
                return f"the SVG has an event handler ({attribute_name}): remove it"
            if attribute_name == "href" and attribute_namespace in ("", XLINK_NAMESPACE) and not value.startswith("#"):
                return "the SVG refers to another document (href): only references inside it (#id) are allowed"
            if re.search(r"url\((?![\'\"]?#)", flat):
                return "the SVG refers to another document (url()): only url(#id) is allowed"
            if "javascript:" in flat or "data:" in flat:
                return "the SVG holds a javascript: or data: address: remove it"
            if attribute_name == "style" and _CSS_LOADS.search(re.sub(r"url\([\'\"]?#", "", flat)):
                return "the SVG's style attribute loads something: remove it"
    return None


def image_problem(data: bytes) -> str | None:
    """Why ``data`` may not be a branding image (None: it may)."""
    if len(data) > MAX_IMAGE_BYTES:
        return f"must be at most {MAX_IMAGE_BYTES // 1024} KiB (this one is {len(data) // 1024} KiB)"
    kind = sniff(data)
    if kind is None:
        return "must be a PNG, JPEG, GIF, WebP, ICO or SVG image"
    if kind == "svg":
        return svg_problem(data)
    return None


STORED_NAME = re.compile(r"[0-9a-f]{8,64}\.(" + "|".join(IMAGE_TYPES) + r")\Z")  # as image_file names them


def stored_image(name: str) -> str | None:
    """The extension of the stored branding image ``name`` (a file name directly under
    :data:`UPLOAD_DIRECTORY`, named as :func:`image_file` names them, that exists), or None. The one
    test of what is a branding image: what a document may refer to and what is served."""
    from django.core.files.storage import default_storage

    match = STORED_NAME.match(name)
    if match is None or not default_storage.exists(f"{UPLOAD_DIRECTORY}/{name}"):
        return None
    return match.group(1)


def image_file(upload: Any) -> ContentFile:
    """A checked upload as a file to store under a random name with its real type's extension.
    ``ValidationError`` with the reason otherwise."""
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_IMAGE_BYTES:
        raise ValidationError(f"must be at most {MAX_IMAGE_BYTES // 1024} KiB")
    upload.seek(0)
    data = upload.read(MAX_IMAGE_BYTES + 1)
    problem = image_problem(data)
    if problem is not None:
        raise ValidationError(problem)
    return ContentFile(data, name=f"{uuid.uuid4().hex}.{sniff(data)}")


# -- the pages and messages ---------------------------------------------------------------------------

def display_name(policy: Policy, application: Any = None) -> str:
    """The name the pages and messages show (``Branding.name_for``: the code messages use it too)."""
    return policy.branding.name_for(application)


def context(policy: Policy, application: Any = None) -> dict[str, Any]:
    """The template context that brands a hosted page (``portcullis/base.html`` reads it) or a
    message: every page of the sign-in flow takes it from here. The colours are validated again
    (a value written around the validation is dropped, not rendered) and the CSS is cleaned."""
    brand = policy.branding
    values: dict[str, Any] = {
        "brand_name": display_name(policy, application),
        "brand_logo": brand.logo_url or brand.logo_dark_url,
        "brand_logo_dark": brand.logo_dark_url if brand.logo_url else "",
        "brand_favicon": brand.favicon_url,
        "brand_css": safe_css(brand.custom_css),
        "brand_terms_url": brand.terms_url if link_problem(brand.terms_url) is None else "",
        "brand_privacy_url": brand.privacy_url if link_problem(brand.privacy_url) is None else "",
        "brand_support_email": brand.support_email if email_problem(brand.support_email) is None else "",
    }
    for key, colour in (("brand_primary", brand.primary_color), ("brand_primary_dark", brand.primary_color_dark)):
        if colour and colour_problem(colour) is None:
            values[key] = colour
            values[key.replace("primary", "on_primary")] = on_colour(colour)
    return values


def for_client(request: Any, client_id: str) -> dict[str, Any]:
    """:func:`context` for ``client_id``'s effective experience (the default one for ``""``)."""
    from experience.policy import policy_for
    from identity.applications import load_application

    return context(policy_for(client_id, request), load_application(client_id) if client_id else None)


def page_context(request: Any, application: Any) -> dict[str, Any]:
    """identity's ``PAGE_CONTEXT`` seam: its own pages (consent, sign-out, errors) branded like the
    sign-in pages, by ``application``'s effective experience (the default one without an application)."""
    return for_client(request, application.client_id if application is not None else "")
