"""Messages people read (on pages, in refusals) that a page can translate.

A ``Text`` is the English message itself, so logs, the CLI and the admin API use it as
the plain string it is, and it also keeps its catalogue id and parameters, so a page
looks it up in the reader's language (``bastion.web.i18n``) and fills the parameters
after translating. ``Text`` is the extraction keyword of ``make messages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Text(str):
    """An English message (``msgid % params``) that remembers how to translate itself."""

    msgid: str
    params: Mapping[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Text:
        text = super().__new__(cls, msgid % params if params else msgid)
        text.msgid = msgid
        text.params = params
        return text

    def translated(self, gettext: Any) -> str:
        translated: str = gettext(self.msgid)
        return translated % self.params if self.params else translated
