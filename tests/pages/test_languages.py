"""Choosing a page's language: OIDC Core §3.1.2.1 ``ui_locales``, then RFC 9110 §12.5.4
``Accept-Language``, then the configured default."""

from __future__ import annotations

import pytest

from bastion.web.i18n import Dates, available, negotiate, translations

OFFERED = ("en", "de", "fr_CA")


@pytest.mark.parametrize(
    ("ui_locales", "accept_language", "expected"),
    [
        # ui_locales wins over the browser, first supported tag first.
        ("de", "en-US,en;q=0.9", "de"),
        ("ja de en", "en", "de"),
        # A regional tag falls back to its language; tag case does not matter.
        ("DE-at", None, "de"),
        ("fr-ca", None, "fr_CA"),
        # Nothing supported in ui_locales: the browser decides, by q-value not order.
        ("ja", "en;q=0.5, de;q=0.8", "de"),
        (None, "fr;q=1, de;q=0.9", "de"),
        # q=0 means "not acceptable" (RFC 9110 §12.4.2); * and junk are ignored.
        (None, "de;q=0, *;q=0.5", "en"),
        (None, "de;q=abc", "en"),
        (None, "<script>, de", "de"),
        # Nothing at all: the default.
        (None, None, "en"),
        ("", "", "en"),
    ],
)
def test_language_negotiation(
    ui_locales: str | None, accept_language: str | None, expected: str
) -> None:
    assert negotiate(ui_locales, accept_language, "en", OFFERED) == expected


def test_the_default_is_used_when_nothing_matches() -> None:
    assert negotiate("ja", "zh-CN", "de", OFFERED) == "de"


def test_a_hostile_header_is_bounded() -> None:
    header = ",".join(["xx"] * 10_000) + ",de"
    assert negotiate(None, header, "en", OFFERED) == "en"


def test_english_and_german_are_shipped() -> None:
    assert available()[:1] == ("en",)
    assert "de" in available()


def test_a_catalogue_translates() -> None:
    assert translations("de").gettext("Sign in") == "Anmelden"
    assert translations("en").gettext("Sign in") == "Sign in"


def test_dates_are_readable_and_machine_valid() -> None:
    now = 1_796_490_543.0  # 2026-12-05 17:09:03 UTC
    english, german = Dates("en", now), Dates("de", now)
    assert english.iso(now) == "2026-12-05T17:09:03+00:00"
    assert english.datetime(now) == "Dec 5, 2026, 5:09:03\u202fPM UTC"
    assert german.datetime(now) == "05.12.2026, 17:09:03 UTC"
    assert english.relative(now - 3 * 3600) == "3 hours ago"
    assert german.relative(now - 3 * 3600) == "vor 3 Stunden"
    assert english.relative(now + 2 * 86400) == "in 2 days"
