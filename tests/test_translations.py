"""Every string of the hosted pages' templates is translated into Russian and Ukrainian (Django
admin's pages, under templates/admin/, are not hosted pages)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import translation

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted(p for app in ("identity", "experience") for p in (ROOT / app / "templates").rglob("*.html")
                   if "admin" not in p.relative_to(ROOT / app / "templates").parts)
TRANSLATE = re.compile(r"""{%\s*translate\s+(?:"([^"]*)"|'([^']*)')""")
BLOCK = re.compile(r"{%\s*blocktranslate[^%]*%}(.*?){%\s*endblocktranslate\s*%}", re.S)


def messages(template: Path) -> list[str]:
    text = template.read_text()
    found = [a or b for a, b in TRANSLATE.findall(text)]
    found += [re.sub(r"{{\s*(\w+)\s*}}", r"%(\1)s", block) for block in BLOCK.findall(text)]
    return found


def test_the_templates_have_strings_to_check():
    assert sum(len(messages(t)) for t in TEMPLATES) > 30


@pytest.mark.parametrize("language", ["ru", "uk"])
def test_every_template_string_is_translated(language):
    missing = []
    with translation.override(language):
        for template in TEMPLATES:
            for message in messages(template):
                if translation.gettext(message) == message:
                    missing.append(f"{template.relative_to(ROOT)}: {message!r}")
    assert missing == []
