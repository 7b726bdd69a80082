"""Two applications, two experiences, in a real browser (Chromium): each sign-in page shows its own
name, logo (loaded), colours (the button's computed background) and methods in its order, in the
light and the dark colour scheme (the dark colour and the dark logo). A screenshot of each page in
each scheme is saved to var/artefacts/screenshots/ (docs/development.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers import authorize_params, branded, make_application, png, svg

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "artefacts" / "screenshots"


@pytest.fixture
def browser(page: Any, live_server: Any, transactional_db: Any, monkeypatch: Any, settings: Any, tmp_path: Path) -> Any:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's event loop
    settings.MEDIA_ROOT = tmp_path / "media"
    return page


def rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i:i + 2], 16) for i in (1, 3, 5)))


def open_sign_in(page: Any, base: str, app: Any) -> None:
    page.goto(f"{base}/oauth/authorize?{urlencode(authorize_params(app))}")
    page.wait_for_url("**/sign-in/**")


def check(page: Any, *, name: str, light: str, dark: str, logo: str, logo_dark: str, methods: list[str],
          shot: str) -> None:
    for scheme, colour, source in (("light", light, logo), ("dark", dark, logo_dark)):
        page.emulate_media(color_scheme=scheme)
        page.reload()
        assert page.get_by_role("heading", level=1).inner_text() == f"Sign in to {name}"
        image = page.get_by_role("img", name=name)
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.evaluate("img => img.currentSrc").endswith(source), scheme
        assert page.locator("nav.tabs a").all_inner_texts() == methods
        button = page.locator("main form button[type=submit]").first
        assert button.evaluate("b => getComputedStyle(b).backgroundColor") == rgb(colour), scheme
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{shot}-{scheme}.png"), full_page=True)
        assert (SCREENSHOTS / f"{shot}-{scheme}.png").stat().st_size > 0


def test_two_applications_each_show_their_own_branding_and_methods(browser, live_server, user, mail_code):
    shop = make_application(name="Shop")
    shop_row = branded(shop, {"branding": {"display_name": "Acme Shop", "primary_color": "#0b6e4f",
                                           "primary_color_dark": "#8ce99a"},
                              "authenticators": ["email-code", "password"]},
                       logo=png(120, 40, (11, 110, 79)), logo_dark=png(120, 40, (140, 233, 154)))
    tools = make_application(name="Beta Tools")
    tools_row = branded(tools, {"branding": {"primary_color": "#c2255c", "primary_color_dark": "#faa2c1"},
                                "authenticators": ["password", "email-code"]}, logo=svg("#c2255c"))

    open_sign_in(browser, live_server.url, shop)
    check(browser, name="Acme Shop", light="#0b6e4f", dark="#8ce99a", logo=shop_row.logo.url,
          logo_dark=shop_row.logo_dark.url, methods=["E-mail code", "Password"], shot="acme-shop")

    open_sign_in(browser, live_server.url, tools)
    # No dark logo: the one logo in both schemes.
    check(browser, name="Beta Tools", light="#c2255c", dark="#faa2c1", logo=tools_row.logo.url,
          logo_dark=tools_row.logo.url, methods=["Password", "E-mail code"], shot="beta-tools")
