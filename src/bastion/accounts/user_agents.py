"""A short, human label for a browser session's User-Agent ("Chrome on Android").

The account page lists sessions so that people can spot one that is not theirs; the raw
User-Agent string is unreadable for that, and full parsers (ua-parser's regex tables)
are large and change monthly. The few families below cover what signs in through a
system browser; anything else is labelled by what can be recognised, or "Unknown
browser", and the raw string stays available on the page.

Order matters: browsers built on Chromium also say "Chrome" and "Safari", so the more
specific tokens are tested first. Client hints (``Sec-CH-UA``) would be more precise
but reach only Chromium browsers and only over HTTPS after an opt-in; the label is a
hint to a person, never a security decision.
"""

from __future__ import annotations

import re

Rules = tuple[tuple[re.Pattern[str], str], ...]


def _rules(*pairs: tuple[str, str]) -> Rules:
    """(pattern, label) pairs, tested in order: the first match wins."""
    return tuple((re.compile(pattern), label) for pattern, label in pairs)


# Tokens as documented by each vendor.
_BROWSERS = _rules(
    (r"\bEdg(?:e|A|iOS)?/", "Edge"),
    (r"\bOPR/|\bOpera\b", "Opera"),
    (r"\bSamsungBrowser/", "Samsung Internet"),
    (r"\bFxiOS/|\bFirefox/", "Firefox"),
    (r"\bCriOS/|(?:\b|Headless)Chrom(?:e|ium)/", "Chrome"),
    (r"\bVersion/[\d.]+.*\bSafari/", "Safari"),
)
_SYSTEMS = _rules(
    (r"\bAndroid\b", "Android"),
    (r"\biPhone\b|\biPod\b", "iPhone"),
    (r"\biPad\b", "iPad"),
    (r"\bCrOS\b", "ChromeOS"),
    (r"\bWindows\b", "Windows"),
    (r"\bMac OS X\b|\bMacintosh\b", "macOS"),
    (r"\bLinux\b", "Linux"),
)
MAX_RAW = 512


def _first(rules: Rules, user_agent: str) -> str | None:
    return next((label for pattern, label in rules if pattern.search(user_agent)), None)


def label(user_agent: str | None) -> tuple[str | None, str | None]:
    """The (browser, system) of a User-Agent, each None when not recognised."""
    if not user_agent:
        return None, None
    # Bounded input: the header is attacker-chosen and the patterns scan it.
    text = user_agent[:MAX_RAW]
    return _first(_BROWSERS, text), _first(_SYSTEMS, text)
