"""Languages of Bastion's pages: gettext catalogues through Babel, chosen per request.

The catalogues are the ``.po`` files under ``web/locales/<language>/LC_MESSAGES``,
compiled in memory when first used, so a translation is one text file and no build
step. The language of a page is, in order (OIDC Core §3.1.2.1, RFC 9110 §12.5.4):

1. the OIDC ``ui_locales`` of the authorization request (space-separated BCP 47 tags,
   in order of preference);
2. the browser's ``Accept-Language`` (q-values honoured, ``q=0`` meaning "not this");
3. the configured default (``[pages] default_locale``).

A tag matches a catalogue by its full form first (``de-AT`` → ``de_AT``), then by its
primary language (``de-AT`` → ``de``).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN = "messages"
SOURCE_LOCALE = "en"
# Header values are attacker-chosen; only this much of one is parsed.
MAX_HEADER = 512
MAX_TAGS = 16
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")


def available() -> tuple[str, ...]:
    """The languages pages can be shown in: English (the source) and every catalogue."""
    root = files("bastion.web").joinpath("locales")
    found = {
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and entry.joinpath("LC_MESSAGES", f"{DOMAIN}.po").is_file()
    }
    return (SOURCE_LOCALE, *sorted(found - {SOURCE_LOCALE}))


@cache
def translations(language: str) -> NullTranslations:
    """The compiled catalogue of one language, else of its primary language (``de_AT``
    → ``de``), else none (English, the source language)."""
    root = files("bastion.web").joinpath("locales")
    po = next(
        (
            candidate
            for name in dict.fromkeys((language, language.split("_")[0]))
            if name != SOURCE_LOCALE
            and (candidate := root.joinpath(name, "LC_MESSAGES", f"{DOMAIN}.po")).is_file()
        ),
        None,
    )
    if po is None:
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    # Fuzzy entries are drafts: shown in English until a translator confirms them.
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def _tags(ui_locales: str | None) -> list[str]:
    if not ui_locales:
        return []
    return [t for t in ui_locales[:MAX_HEADER].split()[:MAX_TAGS] if _TAG.match(t)]


def _weighted(accept_language: str | None) -> list[str]:
    """Accept-Language tags by preference (RFC 9110 §12.4.2, §12.5.4); ``*`` is ignored."""
    if not accept_language:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language[:MAX_HEADER].split(",")[:MAX_TAGS]):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag != "*" and _TAG.match(tag) and 0 < weight <= 1:
            ranked.append((-weight, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def _match(tag: str, languages: tuple[str, ...]) -> str | None:
    parts = tag.replace("_", "-").split("-")
    full = "_".join([parts[0].lower(), *(p.upper() if len(p) == 2 else p for p in parts[1:])])
    lowered = {language.lower(): language for language in languages}
    for candidate in (full, parts[0].lower()):
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    return None


def negotiate(
    ui_locales: str | None,
    accept_language: str | None,
    default: str,
    languages: tuple[str, ...] | None = None,
) -> str:
    """The language to show: the first ``ui_locales`` tag, then Accept-Language, with a
    catalogue; else ``default``."""
    offered = languages if languages is not None else available()
    for tag in (*_tags(ui_locales), *_weighted(accept_language)):
        found = _match(tag, offered)
        if found is not None:
            return found
    return default


class Dates:
    """Dates and times for one page, in its language and as a time relative to now."""

    def __init__(self, language: str, now: float) -> None:
        try:
            self.locale = Locale.parse(language)
        except (UnknownLocaleError, ValueError):
            self.locale = Locale.parse(SOURCE_LOCALE)
        self.now = now

    @staticmethod
    def iso(timestamp: float) -> str:
        """A valid ``<time datetime>`` value (HTML's global date and time string)."""
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")

    def datetime(self, timestamp: float) -> str:
        moment = datetime.fromtimestamp(timestamp, UTC)
        return format_datetime(moment, "medium", tzinfo=UTC, locale=self.locale) + " UTC"

    def relative(self, timestamp: float) -> str:
        """The distance to now as people say it: "3 hours ago", "in 2 days"."""
        return format_timedelta(
            timedelta(seconds=timestamp - self.now),
            add_direction=True,
            threshold=1.0,
            locale=self.locale,
        )
