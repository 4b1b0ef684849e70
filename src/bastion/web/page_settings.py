"""The ``[pages]`` table: how sign-in, consent and account pages speak to people.

See docs/pages.md. Scope descriptions are in ``[oauth.scope_descriptions]`` and each
app's branding on its client (``logo_uri``, ``policy_uri``, ``tos_uri``,
``accent_color``), because both belong to the OAuth registration.
"""

from __future__ import annotations

from pydantic import field_validator

from bastion.configtypes import Section


class PageSettings(Section):
    # The language of a page when neither the app's ui_locales nor the browser's
    # Accept-Language names one Bastion has a catalogue for.
    default_locale: str = "en"

    @field_validator("default_locale")
    @classmethod
    def _known(cls, value: str) -> str:
        from bastion.web.i18n import available

        languages = available()
        if value not in languages:
            raise ValueError(f"no catalogue for {value!r}; available: {', '.join(languages)}")
        return value
