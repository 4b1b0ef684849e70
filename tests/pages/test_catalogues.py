"""Every shipped language is complete: each message the pages can show (templates and
``Text`` in the code) has a confirmed translation with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import bastion
from bastion.web.i18n import SOURCE_LOCALE, available

ROOT = Path(bastion.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
METHODS = [
    ("**.py", "python"),
    ("web/templates/**.html", "jinja2"),
]


def _messages() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT),
        method_map=METHODS,
        options_map={"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"Text": None, "_": None, "ngettext": (1, 2)},
    ):
        singular = message[0] if isinstance(message, tuple) else message
        if singular:
            found.add(singular)
    return found


def test_extraction_finds_the_pages_messages() -> None:
    messages = _messages()
    assert "Sign in to %(app)s" in messages  # a template
    assert "The username or password is incorrect." in messages  # a Text in the code


@pytest.mark.parametrize("language", [lang for lang in available() if lang != SOURCE_LOCALE])
def test_a_shipped_language_translates_every_message(language: str) -> None:
    path = ROOT / "web" / "locales" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    missing, broken = [], []
    for msgid in sorted(_messages()):
        entry = catalog.get(msgid)
        string = entry.string if entry is not None else None
        translated = string[0] if isinstance(string, tuple | list) else string
        if not translated or (entry is not None and entry.fuzzy):
            missing.append(msgid)
        elif set(PLACEHOLDER.findall(msgid)) != set(PLACEHOLDER.findall(translated)):
            broken.append(msgid)
    assert missing == [], f"{language}: untranslated: {missing}"
    assert broken == [], f"{language}: placeholders differ: {broken}"
