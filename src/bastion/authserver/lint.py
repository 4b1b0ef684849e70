"""Warnings about an authorization server configuration that is valid but weaker than the
default; ``bastion check`` prints them (and fails on them with ``--strict``)."""

from __future__ import annotations

from bastion.authserver.settings import OAuthSettings
from bastion.errors import ConfigProblem


def oauth_warnings(settings: OAuthSettings, *, production: bool) -> list[ConfigProblem]:
    found: list[ConfigProblem] = []
    if production and not settings.dpop.require_for_public_clients:
        found.append(
            ConfigProblem(
                "oauth.dpop.require_for_public_clients",
                "public clients may get bearer tokens: a token copied off a phone works "
                "anywhere; true binds every app's tokens to a key that stays on the device "
                "(RFC 9449)",
            )
        )
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
