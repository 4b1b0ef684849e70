"""Session labels from User-Agent strings (real strings, as each browser sends them)."""

from __future__ import annotations

import pytest

from bastion.accounts.user_agents import MAX_RAW, label

CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/130.0.6723.90 Mobile/15E148 Safari/604.1"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.68"
)
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0"
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like "
    "Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
)
HEADLESS_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (CHROME_ANDROID, ("Chrome", "Android")),
        (SAFARI_IPHONE, ("Safari", "iPhone")),
        (CHROME_IOS, ("Chrome", "iPhone")),
        (EDGE_WINDOWS, ("Edge", "Windows")),
        (FIREFOX_MAC, ("Firefox", "macOS")),
        (SAMSUNG, ("Samsung Internet", "Android")),
        (HEADLESS_LINUX, ("Chrome", "Linux")),
        ("curl/8.5.0", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_a_user_agent_gets_a_short_label(agent: str | None, expected: tuple[str, str]) -> None:
    assert label(agent) == expected


def test_only_the_start_of_a_huge_header_is_read() -> None:
    # The header is attacker-chosen: a token past the bound is not recognised.
    assert label("x" * MAX_RAW + " Firefox/1.0") == (None, None)
