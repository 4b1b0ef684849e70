"""Warnings about an authorization server configuration that is valid but weaker than the
default; ``bastion check`` prints them (and fails on them with ``--strict``)."""

from __future__ import annotations

from bastion.authserver.settings import OAuthSettings
from bastion.errors import ConfigProblem


def oauth_warnings(settings: OAuthSettings) -> list[ConfigProblem]:
    found: list[ConfigProblem] = []
    if settings.refresh_grace > 0:
        found.append(
            ConfigProblem(
                "oauth.refresh_grace",
                "a refresh grace window weakens reuse detection: inside it, the token just "
                "rotated out still works from the same address and User-Agent (RFC 9700 "
                "§4.14.2); 0 detects every reuse",
            )
        )
    return found
