"""Path templates: ``/users/{user_id}/notes/{note_id}``, one parameter per whole segment.

Requests are matched segment by segment on the raw path, each segment decoded once, so
an encoded slash or dot-segment (``%2F``, ``%2e%2e``) can never move a request to
another upstream path (RFC 3986 §3.3, §5.2.4): such segments are refused outright.
Values are percent-encoded again when the upstream path is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from bastion.errors import BadPath

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$")
# RFC 3986 unreserved characters plus the sub-delimiters that are safe in a segment.
_STATIC = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$")
MAX_SEGMENTS = 32
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")
# Printable ASCII without backslash: such a path needs no decoding.
_PLAIN = re.compile(rb"[\x21-\x5b\x5d-\x7e]*")


@dataclass(frozen=True)
class PathTemplate:
    text: str
    # Each segment is ("static", text) or ("param", name).
    segments: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        if not text.startswith("/") or (text.endswith("/") and text != "/"):
            raise ValueError(f"path {text!r} must start with / and not end with one")
        parts = text.split("/")[1:] if text != "/" else []
        if len(parts) > MAX_SEGMENTS:
            raise ValueError(f"path {text!r} has more than {MAX_SEGMENTS} segments")
        segments: list[tuple[str, str]] = []
        for part in parts:
            if match := _PARAM.match(part):
                segments.append(("param", match.group(1)))
            elif _STATIC.match(part) and part not in (".", ".."):
                segments.append(("static", part))
            else:
                raise ValueError(f"path {text!r}: segment {part!r} is neither text nor {{name}}")
        names = [name for kind, name in segments if kind == "param"]
        if len(names) != len(set(names)):
            raise ValueError(f"path {text!r} repeats a parameter name")
        return cls(text, tuple(segments))

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for kind, name in self.segments if kind == "param")

    def render(self, values: Mapping[str, str]) -> str:
        """The path with each parameter percent-encoded as one segment."""
        out = []
        for kind, name in self.segments:
            if kind == "param":
                value = values[name]
                # Unreserved characters only (RFC 3986 §2.3): nothing to encode.
                out.append(value if _UNRESERVED.fullmatch(value) else quote(value, safe=""))
            else:
                out.append(name)
        return "/" + "/".join(out)

    def overlaps(self, other: PathTemplate) -> bool:
        """Whether some request path would match both templates."""
        if len(self.segments) != len(other.segments):
            return False
        return all(
            a[0] == "param" or b[0] == "param" or a[1] == b[1]
            for a, b in zip(self.segments, other.segments, strict=True)
        )


def split_path(raw: bytes) -> list[str]:
    """Decoded segments of a raw request path, or ``BadPath``.

    Refused: empty segments, dot-segments (plain or encoded), segments that decode to a
    slash, backslash or control character, and invalid UTF-8.
    """
    if not raw.startswith(b"/"):
        raise BadPath("not an origin-form path")
    if raw == b"/":
        return []
    parts = raw[1:].split(b"/")
    if len(parts) > MAX_SEGMENTS:
        raise BadPath("too many segments")
    if b"%" not in raw and _PLAIN.fullmatch(raw):
        # The common case: nothing encoded, nothing to decode (the hot path).
        if b"" in parts or b"." in parts or b".." in parts:
            raise BadPath("unsafe segment")
        return raw[1:].decode("ascii").split("/")
    segments: list[str] = []
    for part in parts:
        try:
            text = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            raise BadPath("invalid UTF-8") from None
        if not text or text in (".", "..") or any(c in text for c in "/\\") or _control(text):
            raise BadPath("unsafe segment")
        segments.append(text)
    return segments


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
